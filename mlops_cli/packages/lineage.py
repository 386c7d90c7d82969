"""What a registered version records about where its package came from.

The code digest tells "the code changed" apart from "only the weights changed"; the lineage names
the git commit (and whether the tree was dirty) of the folder a model was registered from, who
registered it, where and with which mlops. Nothing here fails: outside a git repository, or without
git, the commit is simply not recorded.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from mlops_cli import __version__
from mlops_cli.packages.manifest import PackageManifest

# What counts as code (the code digest changes when these do, not when weights change).
CODE_PATTERNS = ("*.py", "mlops.yaml", "*.pbtxt", "requirements*.txt", "MAR-INF/*")


def code_digest(manifest: PackageManifest) -> str:
    """sha256 over the (path, sha256) of the package's code files."""
    code = [
        [entry.path, entry.sha256]
        for entry in manifest.files
        if any(fnmatch.fnmatch(entry.path, pattern) for pattern in CODE_PATTERNS)
    ]
    return hashlib.sha256(json.dumps(code, separators=(",", ":")).encode()).hexdigest()


def git_lineage(folder: Path) -> dict[str, Any]:
    """The commit and dirty flag of the git repository holding ``folder`` (empty outside one)."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    lineage: dict[str, Any] = {"git_commit": commit, "git_dirty": bool(status)}
    remote = git("config", "--get", "remote.origin.url")
    if remote:
        lineage["git_remote"] = remote
    return lineage


def lineage_of(folder: Path) -> dict[str, Any]:
    """The lineage a version records when registered from ``folder``: git, user, host, tool."""
    return {
        **git_lineage(folder),
        "user": _user(),
        "host": platform.node(),
        "tool": f"mlops {__version__}",
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
