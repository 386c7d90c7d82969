"""The MMSServer harness against a real multi-model-server (Java) process.

Skipped when multi-model-server or java is missing, unless CI=true (then it fails).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import require
from tests.servers.mms import MMSServer, mms_unavailable_reason

pytestmark = pytest.mark.integration

# Loopback only: never route through an HTTP(S)_PROXY from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _require_mms() -> None:
    reason = mms_unavailable_reason()
    require(reason is None, f"a real multi-model-server cannot run: {reason}")


def _write_model(root: Path, dirname: str, **spec: Any) -> Path:
    model_dir = root / dirname
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.json").write_text(json.dumps(spec), encoding="utf-8")
    return model_dir


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for init to reap it (holds nothing)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def mms_clean(mms: MMSServer) -> MMSServer:
    """The session's server (conftest), reset before this test."""
    return mms


@pytest.fixture
def model_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_ping_is_healthy(mms: MMSServer) -> None:
    assert mms.url == f"http://127.0.0.1:{mms.port}"
    assert 0 < mms.port < 32767
    with _NO_PROXY.open(mms.url + "/ping", timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["status"] == "Healthy"
    proc = psutil.Process(mms.pid)
    assert "com.amazonaws.ml.mms.ModelServer" in proc.cmdline()


def test_register_and_invoke_two_models(mms_clean: MMSServer, model_root: Path) -> None:
    mms = mms_clean
    doubler = _write_model(model_root, "doubler", name="doubler", version=3, scale=2.0)
    halver = _write_model(model_root, "halver", name="halver", version=7, scale=0.5)
    mms.register("m-doubler", doubler)
    mms.register("m-halver", halver)
    assert sorted(mms.models()) == ["m-doubler", "m-halver"]
    # One python worker (plus its per-connection fork) per model.
    assert len(mms.worker_pids()) >= 2

    status, body = mms.invoke("m-doubler", b"[1, 2.5, -3]")
    assert status == 200, body
    assert json.loads(body) == {"model": "doubler", "version": 3, "outputs": [2.0, 5.0, -6.0]}

    status, body = mms.invoke("m-halver", json.dumps({"inputs": [4, 10]}).encode())
    assert status == 200, body
    assert json.loads(body) == {"model": "halver", "version": 7, "outputs": [2.0, 5.0]}

    with pytest.raises(RuntimeError, match="409"):
        mms.register("m-doubler", doubler)


def test_unknown_model_is_404(mms_clean: MMSServer) -> None:
    status, body = mms_clean.invoke("no-such-model", b"[1]")
    assert status == 404
    assert "no-such-model" in json.loads(body)["message"]


def test_failing_handler_is_500_with_message(mms_clean: MMSServer, model_root: Path) -> None:
    broken = _write_model(model_root, "broken", name="broken", version=1, fail_on_invoke=True)
    mms_clean.register("broken", broken)
    status, body = mms_clean.invoke("broken", b"[1, 2]")
    assert status == 500
    text = body.decode()
    assert "ModelInvokeError" in text
    assert "'broken' is configured to fail (fail_on_invoke)" in text
    assert "Traceback" in text


def test_bad_request_body_is_500_with_message(mms_clean: MMSServer, model_root: Path) -> None:
    ok = _write_model(model_root, "ok", name="ok", version=1, scale=1.0)
    mms_clean.register("ok", ok)
    status, body = mms_clean.invoke("ok", b"not json")
    assert status == 500
    assert "request body is not valid JSON" in body.decode()


def test_reset_leaves_no_models(mms: MMSServer, model_root: Path) -> None:
    mms.reset()
    mms.register("r1", _write_model(model_root, "r1", name="r1", version=1))
    mms.register("r2", _write_model(model_root, "r2", name="r2", version=2))
    assert sorted(mms.models()) == ["r1", "r2"]
    mms.reset()
    assert mms.models() == []
    status, _ = mms.invoke("r1", b"[1]")
    assert status == 404
    # Unregistering a model ends its worker processes.
    deadline = time.monotonic() + 10
    while mms.worker_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mms.worker_pids() == []


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    _require_mms()
    model_dir = _write_model(tmp_path / "models", "one", name="one", version=1, scale=3.0)
    with MMSServer(workdir=tmp_path / "server") as server:
        server.register("one", model_dir)
        status, body = server.invoke("one", b"[2]")
        assert status == 200 and json.loads(body)["outputs"] == [6.0]
        java_pid = server.pid
        worker_pids = server.worker_pids()
        assert worker_pids, "a registered model has a python worker"
        pid_file = server.pid_file
        assert pid_file.read_text().strip() == str(java_pid)
        url = server.url
    assert _gone(java_pid)
    assert [p for p in worker_pids if not _gone(p)] == []
    assert not pid_file.exists()
    with pytest.raises(OSError):
        _NO_PROXY.open(url + "/ping", timeout=2)
    server.stop()  # idempotent
