"""Register a package as the next immutable version of a model, with its lineage.

The package is verified first (its manifest hashes to its digest, every blob is in the store at
its size; with ``verify="full"`` every blob is read and hashed), so nothing is recorded for a
package that could not be served, and a package's ``mlops.yaml`` must be valid (its entrypoint a
file of the package). A model folder or ``hf://`` source is uploaded first.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlops_cli import __version__
from mlops_cli.errors import NotFoundError
from mlops_cli.hashcache import HashCache
from mlops_cli.package import PackageManifest
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.registry.base import NewVersion, Registered, Registry, check_name
from mlops_cli.render.common import stored_spec
from mlops_cli.stores import ArtifactStore, open_store
from mlops_cli.stores.base import DigestMismatchError

# What counts as code (the code digest changes when these do, not when weights change).
CODE_PATTERNS = ("*.py", "mlops.yaml", "*.pbtxt", "requirements*.txt", "MAR-INF/*")


@dataclass(frozen=True)
class RegisterResult:
    registered: Registered
    package_uri: str
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        version = self.registered.version
        return {
            "model": version.model,
            "version": version.version,
            "created": self.registered.created,
            "package_digest": version.package_digest,
            "package_uri": self.package_uri,
            "uploaded": self.uploaded,
            "code_digest": version.code_digest,
            "lineage": dict(version.lineage),
            "source": dict(version.source),
        }


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


def verify_package(
    store: ArtifactStore,
    digest: str,
    *,
    verify: Literal["sizes", "full"] = "sizes",
    reporter: Reporter = SILENT,
) -> PackageManifest:
    """Check a package can be served: manifest digest, and every blob present at its size
    (``full``: read and hashed). Raises NotFoundError or DigestMismatchError."""
    manifest = store.get_manifest(digest)
    sizes = {entry.sha256: entry.size for entry in manifest.files}
    missing = store.missing_blobs(sizes)
    if missing:
        path = next(e.path for e in manifest.files if e.sha256 in missing)
        raise NotFoundError(
            f"package {manifest.name} ({digest[:12]}) is incomplete: {len(missing)} blob(s) missing, e.g. {path}",
            hint="upload the model again",
        )
    for entry in manifest.files:
        actual = store.blob_size(entry.sha256)
        if actual != entry.size:
            raise DigestMismatchError(
                what=f"{entry.path} is {actual} bytes in the store, {entry.size} in the manifest",
                expected=entry.sha256,
                actual="?" * 12,
            )
    if verify == "full":
        with running(reporter, "verifying blobs", total=manifest.total_bytes, unit="bytes") as task:
            for digest_ in sizes:
                with store.open_blob(digest_) as reader:
                    while chunk := reader.read(8 << 20):
                        task.advance(len(chunk))
    return manifest


def register(
    source: str,
    *,
    registry: Registry,
    store_uri: str,
    model: str | None = None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
    new_version: bool = False,
    verify: Literal["sizes", "full"] = "sizes",
    cache: HashCache | None = None,
    reporter: Reporter = SILENT,
) -> RegisterResult:
    """Register ``source`` (a package URI, ``sha256:<hex>`` in ``store_uri``, a model folder or
    ``hf://org/name@revision``) as a version of ``model`` (default: the package's name)."""
    from mlops_cli.upload import parse_package_ref, upload

    if model is not None:
        check_name("model", model)
    if alias is not None:
        check_name("alias", alias)
    for key in tags or {}:
        check_name("tag", key)
    uploaded = False
    lineage_folder = Path.cwd()
    if source.startswith("hf://") or Path(source).is_dir():
        store = open_store(store_uri)
        result = upload(source, store, reporter=reporter, cache=cache)
        digest, uploaded = result.digest, True
        if Path(source).is_dir():
            lineage_folder = Path(source).resolve()
    else:
        ref_store, digest = parse_package_ref(source)
        store = open_store(ref_store or store_uri)
    manifest = verify_package(store, digest, verify=verify, reporter=reporter)
    stored_spec(store, manifest)  # a package made elsewhere meets the spec's rules too
    lineage: dict[str, Any] = {
        **git_lineage(lineage_folder),
        "user": _user(),
        "host": platform.node(),
        "tool": f"mlops {__version__}",
    }
    registered = registry.register_version(
        model or manifest.name,
        NewVersion(
            package_digest=digest,
            package_uri=store.package_uri(digest),
            code_digest=code_digest(manifest),
            source=dict(manifest.source),
            lineage=lineage,
            tags=dict(tags or {}),
            description=description,
        ),
        new_version=new_version,
        alias=alias,
    )
    if alias is not None and not registered.created:
        registry.set_alias(registered.version.model, alias, registered.version.version)
    return RegisterResult(
        registered=registered, package_uri=store.package_uri(digest), uploaded=uploaded
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
