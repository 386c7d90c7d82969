"""Shared fixtures: an isolated configuration per test, and REAL servers run as subprocesses on
127.0.0.1 free ports (moto server, the local tritonserver through mlops' own manager,
multi-model-server). Servers are session-scoped and reset before each test that uses them.

A server whose extra is not installed skips its tests on a developer machine; with CI=true it
fails them instead, so CI never passes by skipping.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false on a developer machine; fail in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty project folder, with no user config and no MLOPS_* env."""
    for name in list(os.environ):
        if name.startswith("MLOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


# -- moto server ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[object]:
    require(importlib.util.find_spec("moto") is not None, "moto[server] is not installed")
    from tests.servers.moto import MotoServer

    with MotoServer().start() as server:
        yield server


@pytest.fixture
def aws(moto_server: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """A freshly reset moto server, with boto3's standard variables pointing at it."""
    from mlops_cli.aws import reset_clients

    moto_server.reset()  # type: ignore[attr-defined]
    for name, value in moto_server.env().items():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    reset_clients()  # clients cached under another environment must not be reused
    return moto_server


@pytest.fixture
def mme_local(aws: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """An mme-local server of this test's own (its containers start on first use), reading S3
    and the SageMaker control plane from the moto server; mlops' workspace, registry and store
    in ``tmp_path``, and boto3's sagemaker-runtime pointed at mme-local. Stopped by its pid."""
    from tests.servers.mme_local import point_at, running_mme_local

    with running_mme_local(aws, tmp_path / "mme-ws") as manager:
        point_at(manager, tmp_path, monkeypatch)
        yield manager


# -- local Triton (through mlops' own manager) ----------------------------------------------


@pytest.fixture(scope="session")
def local_triton_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")
    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    root = tmp_path_factory.mktemp("triton-ws")
    settings = resolve_settings(cwd=root, environ={}, set_pairs=[f"workspace={root / '.mlops'}"])
    manager = LocalTriton(Workspace(settings.workspace), settings.local)
    manager.up()
    try:
        yield manager
    finally:
        manager.down()


def triton_request(base_url: str, path: str, body: object | None = None) -> object:
    """POST (with a body) or GET a Triton HTTP endpoint; return the decoded JSON or None."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@pytest.fixture
def local_triton(local_triton_session: object) -> object:
    """The session's local Triton with every model unloaded and the repository emptied."""
    manager = local_triton_session
    state = manager.read_state()  # type: ignore[attr-defined]
    assert state is not None, "the session's local Triton is not running"
    for entry in triton_request(state.http_url, "/v2/repository/index", {}) or []:  # type: ignore[union-attr]
        if entry.get("state") == "READY":
            triton_request(state.http_url, f"/v2/repository/models/{entry['name']}/unload", {})
    repo = Path(state.model_repository)
    for child in repo.iterdir():
        shutil.rmtree(child)
    return manager


def install_fixture_model(repository: Path, name: str = "echo") -> Path:
    target = repository / name
    shutil.copytree(FIXTURES / "models" / "echo", target)
    return target


# -- multi-model-server ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def mms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.servers.mms import MMSServer, mms_unavailable_reason

    reason = mms_unavailable_reason()
    require(reason is None, f"multi-model-server cannot run: {reason}")
    with MMSServer(workdir=tmp_path_factory.mktemp("mms")).start() as server:
        yield server


@pytest.fixture
def mms(mms_server: object) -> object:
    mms_server.reset()  # type: ignore[attr-defined]
    return mms_server
