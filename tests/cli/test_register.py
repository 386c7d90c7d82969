"""`mlops register` and the routing commands on the embedded default (file store, SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.stores.base import blob_key
from tests.cli import error_line, run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit


@pytest.fixture
def model(isolated_config: Path) -> Path:
    folder = isolated_config / "tiny"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    return folder


def registry_dump(capsys: pytest.CaptureFixture[str]) -> list[Any]:
    """Everything observable in the registry, to prove a failed command changed nothing."""
    models = run(capsys, "models", "list")
    dump: list[Any] = [models]
    for record in models:
        dump.append(run(capsys, "models", "show", record["name"]))
        dump.append(run(capsys, "models", "versions", record["name"]))
    return dump


def test_register_versions_dedupe_and_lineage_in_a_git_repository(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run([git, "-C", str(model), *args], check=True, env=env, capture_output=True)
    commit = subprocess.run(
        [git, "-C", str(model), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()

    first = run(capsys, "register", str(model), "--alias", "production", "--tag", "team=search")
    assert (first["model"], first["version"], first["created"]) == ("tiny", 1, True)
    assert first["lineage"]["git_commit"] == commit and first["lineage"]["git_dirty"] is False
    assert first["lineage"]["tool"].startswith("mlops ")
    assert first["lineage"]["user"]

    again = run(capsys, "register", str(model))
    assert (again["version"], again["created"]) == (1, False)
    forced = run(capsys, "register", first["package_uri"], "--new-version")
    assert (forced["version"], forced["created"]) == (2, True)

    (model / "model.py").write_text((model / "model.py").read_text() + "# tweak\n")
    dirty = run(capsys, "register", str(model))
    assert dirty["version"] == 3 and dirty["lineage"]["git_dirty"] is True
    assert dirty["code_digest"] != first["code_digest"]

    versions = run(capsys, "models", "versions", "tiny")
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[0]["tags"] == {"team": "search"}
    assert run(capsys, "alias", "get", "tiny", "production")["version"] == 1


def test_routes_resolution_and_compare_and_swap(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(model), "--alias", "production")
    (model / "weights" / "small.bin").write_bytes(b"v2")
    run(capsys, "register", str(model), "--alias", "staging")

    assert run(capsys, "route", "resolve", "anyone", "tiny") == {
        "tenant": "anyone",
        "model": "tiny",
        "version": 1,
        "source": "alias",
        "alias": "production",
        "routing_revision": 2,
    }
    run(capsys, "route", "set", "acme", "tiny", "@staging")
    assert run(capsys, "route", "resolve", "acme", "tiny")["version"] == 2
    run(capsys, "route", "set", "acme", "tiny", "1", "--canary", "2:100")
    resolved = run(capsys, "route", "resolve", "acme", "tiny", "--request-key", "r1")
    assert (resolved["version"], resolved["source"]) == (2, "canary")

    alias = run(capsys, "alias", "get", "tiny", "production")
    run(capsys, "alias", "set", "tiny", "production", "2", "--expect-version", "1")
    line = error_line(
        capsys, "alias", "set", "tiny", "production", "1", "--expect-version", "1", code=1
    )
    assert "points at 2, not 1" in line
    assert run(capsys, "alias", "get", "tiny", "production")["revision"] == alias["revision"] + 1

    run(capsys, "models", "update", "tiny", "--private-to", "acme")
    assert run(capsys, "route", "resolve", "acme", "tiny", "--request-key", "r1")["version"] == 2
    line = error_line(capsys, "route", "resolve", "globex", "tiny", code=1)
    assert "model tiny does not exist" in line and "acme" not in line


def test_bad_input_leaves_the_registry_unchanged(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered = run(capsys, "register", str(model), "--alias", "production")
    before = registry_dump(capsys)

    assert "neither a model folder nor a package reference" in error_line(
        capsys, "register", "file:///nowhere/x.json", code=2
    )
    assert "neither a model folder" in error_line(capsys, "register", "./no-such-folder", code=2)
    assert "no package sha256:" in error_line(capsys, "register", "sha256:" + "1" * 64, code=1)
    assert "has no version 7" in error_line(capsys, "alias", "set", "tiny", "staging", "7", code=1)
    assert "has no alias @canary" in error_line(
        capsys, "route", "set", "acme", "tiny", "@canary", code=1
    )
    assert "model nothere does not exist" in error_line(
        capsys, "route", "set", "acme", "nothere", "1", code=1
    )
    assert "1-64 characters" in error_line(
        capsys, "register", str(model), "--model", "Bad Name!", code=2
    )
    assert "1-32 characters" in error_line(capsys, "alias", "set", "tiny", "Prod", "1", code=2)
    assert "1-128 characters" in error_line(capsys, "route", "set", "a b", "tiny", "1", code=2)
    assert "VERSION:PERCENT" in error_line(
        capsys, "route", "set", "acme", "tiny", "1", "--canary", "50", code=2
    )
    assert "in use" in error_line(capsys, "models", "archive", "tiny", "1", code=1)
    assert registry_dump(capsys) == before

    # a package whose blobs do not match its manifest
    store = Path.cwd() / ".mlops" / "store"
    (model / "weights" / "small.bin").write_bytes(b"different weights, then damaged in the store")
    other = run(capsys, "upload", str(model))
    manifest = json.loads((store / "packages" / "sha256" / f"{other['digest']}.json").read_text())
    blob = store / blob_key(
        next(f["sha256"] for f in manifest["files"] if f["path"] == "weights/small.bin")
    )
    blob.chmod(0o644)
    blob.write_bytes(b"short")
    assert "is 5 bytes in the store" in error_line(capsys, "register", other["uri"], code=1)
    blob.write_bytes(b"X" * manifest["files"][-1]["size"])
    assert "stored bytes hash to" in error_line(
        capsys, "register", other["uri"], "--verify", "full", code=1
    )
    assert not blob.exists(), "a blob that fails verification is moved to quarantine/"
    assert "blob(s) missing" in error_line(capsys, "register", other["uri"], code=1)
    assert registry_dump(capsys) == before
    assert registered["version"] == 1


def test_registry_init_and_unknown_scheme(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path}/reg.db"
    assert run(capsys, "registry", "init", "--registry", uri)["created"] is True
    assert run(capsys, "registry", "init", "--registry", uri)["created"] is False
    line = error_line(capsys, "models", "list", "--registry", "postgres://db", code=2)
    assert "registered schemes: sqlite://, dynamodb://" in line
