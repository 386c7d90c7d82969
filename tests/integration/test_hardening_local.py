"""Hardening of the local target (issue 12 items 8, 12, 19 and 26), on REAL tritonservers: the
session's shared one where a test leaves it serving, a server of the test's own where it stops,
restarts or wedges one."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli.main import main
from tests.cli import error_line, run
from tests.conftest import FIXTURES, require, triton_request

pytestmark = pytest.mark.integration


@pytest.fixture
def env(local_triton: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's local Triton as this test's local target; a registry and store of its own."""
    monkeypatch.setenv("MLOPS_WORKSPACE", str(local_triton.workspace.root))
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    return local_triton


@pytest.fixture
def own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace whose local Triton (started by the test) is stopped at the end, whatever
    the test did."""
    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")
    workspace = tmp_path / "ws"
    monkeypatch.setenv("MLOPS_WORKSPACE", str(workspace))
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    yield workspace
    main(["local", "down", "--set", "local.stop_timeout=2"])


def answer_folder(tmp_path: Path, answer: int, *, extra_spec: str = "") -> Path:
    folder = tmp_path / f"answer-{answer}"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    (folder / "weights" / "answer.txt").write_text(f"{answer}\n")
    if extra_spec:
        spec = folder / "mlops.yaml"
        spec.write_text(spec.read_text() + extra_spec)
    return folder


def index_names(url: str) -> set[str]:
    return {e["name"] for e in triton_request(url, "/v2/repository/index", {}) or []}  # type: ignore[union-attr]


# -- item 26: read-only status, warmup, plural --------------------------------------------------


def test_status_in_an_empty_folder_creates_nothing(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "status") == {"deployments": [], "routers": [], "registry_revision": 0}
    assert list(isolated_config.iterdir()) == []  # no .mlops/registry.db, no .mlops/
    assert "model ghost" in error_line(capsys, "status", "ghost", code=1)
    assert list(isolated_config.iterdir()) == []


def test_status_does_not_count_warmup_requests(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warmup = "warmup:\n  - {name: zeros, count: 3}\n"
    run(capsys, "register", str(answer_folder(tmp_path, 4, extra_spec=warmup)))
    run(capsys, "deploy", "answer@1")
    stats = triton_request(env.read_state().http_url, "/v2/models/answer-v1/stats")
    assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 3  # type: ignore[index]
    [row] = run(capsys, "status")["deployments"]
    assert (row["state"], row["requests"], row["latency_ms"]) == ("READY", 0, None)
    run(capsys, "invoke", "answer", "--input", '{"x": [1]}')
    run(capsys, "invoke", "answer", "--input", '{"x": [1]}')
    [row] = run(capsys, "status")["deployments"]
    assert row["requests"] == 2 and row["latency_ms"] > 0


# -- item 19: down, up, and what was deployed ----------------------------------------------------


def test_down_up_reloads_deployments_and_status_exit_codes(
    own_server: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["local", "up"]) == 0
    assert main(["local", "down"]) == 0
    assert "local Triton stopped (1 process)" in capsys.readouterr().out

    run(capsys, "register", str(answer_folder(tmp_path, 7)))
    run(capsys, "deploy", "answer@1")  # starts the workspace's server
    [row] = run(capsys, "status")["deployments"]
    assert row["state"] == "READY"

    run(capsys, "local", "down")
    [row] = run(capsys, "status", code=1)["deployments"]  # DRIFT is exit 1
    assert row["state"] == "DRIFT"
    assert "not running" in error_line(capsys, "invoke", "answer", "--input", '{"x": [1]}', code=1)

    up = run(capsys, "local", "up")
    assert up["reloaded"] == ["answer-v1"] and up["reload_failed"] == []
    assert {m["name"]: m["state"] for m in up["models"]} == {"answer-v1": "READY"}
    out = run(capsys, "invoke", "answer", "--input", '{"x": [1, 2]}')
    assert out["outputs"]["y"] == [7.0, 7.0]
    [row] = run(capsys, "status")["deployments"]
    assert row["state"] == "READY"
    assert run(capsys, "local", "up")["reloaded"] == []  # already serving: nothing reloaded


def test_invoke_follows_a_server_restarted_on_another_port(
    own_server: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The record keeps the deploy-time port; a restart on a known other port is still found."""
    import socket

    run(capsys, "register", str(answer_folder(tmp_path, 5)))
    run(capsys, "deploy", "answer@1")
    old_url = run(capsys, "local", "status")["http_url"]
    run(capsys, "local", "down")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(old_url.rsplit(":", 1)[1])))  # the old port stays taken
        sock.listen()
        run(capsys, "local", "up")
        out = run(capsys, "invoke", "answer", "--input", '{"x": [0]}')
    assert out["outputs"]["y"] == [5.0]
    assert run(capsys, "local", "status")["http_url"] != old_url


# -- items 8 and 12: a load that cannot work -----------------------------------------------------


def _register_without_root_model_py(tmp_path: Path) -> None:
    """A package whose entrypoint sits in a subfolder, put in the store and the registry through
    the library (validate may refuse such a folder; the deploy must hold on its own)."""
    from mlops_cli.config import resolve_settings
    from mlops_cli.packages.manifest import FileEntry, PackageManifest
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.base import NewVersion
    from mlops_cli.stores import open_store

    folder = tmp_path / "nested"
    (folder / "code").mkdir(parents=True)
    spec = (FIXTURES / "models" / "answer" / "mlops.yaml").read_text()
    (folder / "mlops.yaml").write_text(
        spec.replace("entrypoint: model.py", "entrypoint: code/model.py").replace(
            "weights: [weights/answer.txt]\n", ""
        )
    )
    shutil.copy(FIXTURES / "models" / "answer" / "model.py", folder / "code" / "model.py")
    settings = resolve_settings()
    store = open_store(settings.store)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        store.put_blob(digest, path)
        entries.append(FileEntry(path.relative_to(folder).as_posix(), path.stat().st_size, digest))
    manifest = PackageManifest(name="answer", files=tuple(entries))
    store.put_manifest(manifest)
    open_registry(settings.registry).register_version(
        "answer",
        NewVersion(package_digest=manifest.digest, package_uri=store.package_uri(manifest.digest)),
    )


def test_missing_model_py_is_refused_before_the_load_and_leaves_nothing(
    own_server: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register_without_root_model_py(tmp_path)
    run(capsys, "local", "up")
    line = error_line(capsys, "deploy", "answer@1", code=2)
    assert "model.py" in line and "code/model.py" in line and "timed out" not in line
    repository = own_server / "local" / "models"
    assert list(repository.iterdir()) == []  # item 8: no answer-v1/ left behind
    assert "answer-v1" not in index_names(run(capsys, "local", "status")["http_url"])
    assert run(capsys, "status")["deployments"] == []
    down = run(capsys, "local", "down")
    assert down["was_running"] and down["forced"] is False  # nothing wedged: no SIGKILL


def test_failed_render_leaves_no_model_folder(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(answer_folder(tmp_path, 3)))
    for blob in (tmp_path / "store" / "blobs" / "sha256").rglob("*"):
        if blob.is_file() and blob.read_bytes() == b"3\n":
            blob.chmod(0o644)
            blob.write_bytes(b"9\n")  # the weights blob no longer matches its digest
    assert main(["deploy", "answer@1"]) == 1
    assert "blob" in capsys.readouterr().err  # the damaged blob is the error, not a clean-up
    repository = Path(env.read_state().model_repository)
    assert not (repository / "answer-v1").exists()
    assert run(capsys, "status")["deployments"] == []


def test_a_load_triton_never_ends_is_reported_with_its_log_line(
    own_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Triton entry written by hand without model.py: Triton 2.51's load call never returns
    (the python stub dies before its handshake); the load fails with Triton's own line."""
    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.triton.client import TritonClient, TritonLoadHungError
    from mlops_cli.workspace import Workspace

    settings = resolve_settings()
    local = dataclasses.replace(settings.local, stop_timeout=2.0)
    manager = LocalTriton(Workspace(settings.workspace), local)
    manager.up()
    state = manager.read_state()
    assert state is not None
    entry = Path(state.model_repository) / "hung"
    (entry / "1" / "code").mkdir(parents=True)
    shutil.copy(FIXTURES / "models" / "echo" / "1" / "model.py", entry / "1" / "code" / "model.py")
    config = (FIXTURES / "models" / "echo" / "config.pbtxt").read_text()
    (entry / "config.pbtxt").write_text(config.replace('name: "echo"', 'name: "hung"'))
    server = TritonClient(state.http_url, name="local")
    with pytest.raises(TritonLoadHungError) as caught:
        server.load("hung", timeout=300, failed=manager.load_failure_watch("hung"))
    assert "Python model file not found" in caught.value.message
    assert "hung/1/model.py" in caught.value.message
