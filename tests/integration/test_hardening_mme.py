"""mme-local hardening end to end (issue 12, items 4, 20, 21): moto for S3, the mme-local server
started as `mlops local up --mme` starts it, a REAL multi-model-server behind it, and boto3's
sagemaker-runtime client with its default configuration (retries included) pointed at it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.aws import client
from tests.conftest import require
from tests.servers.mme_models import make_model, tarball_bytes

pytestmark = pytest.mark.integration

BUCKET = "mme-hardening"
LIMIT = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint payload limit


@pytest.fixture(scope="module")
def mme_server(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One mme-local server for the module, in its own workspace, reading S3 from moto."""
    from tests.servers.mme_local import running_mme_local
    from tests.servers.mms import mms_unavailable_reason

    reason = mms_unavailable_reason()
    require(reason is None, f"multi-model-server cannot run: {reason}")
    folder = tmp_path_factory.mktemp("mme-hardening") / ".mlops"
    with running_mme_local(moto_server, folder) as manager:
        yield manager


@pytest.fixture
def mme(aws: Any, mme_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", mme_server.url())
    client("s3").create_bucket(Bucket=BUCKET)
    return mme_server


def endpoint(server: Any, tmp_path: Path, name: str, models: list[str], budget_mb: float) -> None:
    """Upload one ``<model>.tar.gz`` per name (64 MB declared each) and register ``name``."""
    from mlops_cli.local.mme import http_json

    s3 = client("s3")
    for model in models:
        folder = make_model(tmp_path / "src" / name, model, memory_mb=64)
        s3.put_object(Bucket=BUCKET, Key=f"{name}/{model}.tar.gz", Body=tarball_bytes(folder))
    body = {"s3_prefix": f"s3://{BUCKET}/{name}/", "backend": "mms", "memory_budget_mb": budget_mb}
    http_json(f"{server.url()}/mme/endpoints/{name}", method="PUT", body=body)


def runtime() -> Any:
    import boto3

    return boto3.client("sagemaker-runtime", region_name="us-east-1")  # default config


def invoke(runtime_client: Any, name: str, target: str) -> dict[str, Any]:
    response = runtime_client.invoke_endpoint(
        EndpointName=name,
        TargetModel=target,
        Body=b'{"inputs": [1]}',
        ContentType="application/json",
    )
    answer: dict[str, Any] = json.loads(response["Body"].read())
    return answer


def state(server: Any, name: str) -> dict[str, Any]:
    from mlops_cli.local.mme import http_json

    found: dict[str, Any] = http_json(f"{server.url()}/mme/endpoints/{name}")
    return found


def test_models_whose_names_differ_only_in_punctuation_answer_from_their_own_model(
    mme: Any, tmp_path: Path
) -> None:
    endpoint(mme, tmp_path, "punct", ["col.x", "col_x"], budget_mb=1024)
    sagemaker = runtime()
    assert invoke(sagemaker, "punct", "col.x.tar.gz")["model"] == "col.x"
    assert invoke(sagemaker, "punct", "col_x.tar.gz")["model"] == "col_x"
    assert invoke(sagemaker, "punct", "col.x.tar.gz")["model"] == "col.x"
    loaded = state(mme, "punct")["loaded"]
    assert {m["target"] for m in loaded} == {"col.x.tar.gz", "col_x.tar.gz"}
    assert len({m["container_name"] for m in loaded}) == 2


def test_concurrent_calls_over_more_models_than_fit_lose_no_request(
    mme: Any, tmp_path: Path
) -> None:
    models = [f"m{i}" for i in range(8)]
    endpoint(mme, tmp_path, "pressure", models, budget_mb=4 * 64 + 10)  # four fit
    clients, calls = 16, 4  # concurrency: 4x the models that fit
    answers: list[tuple[str, str]] = []
    failures: list[str] = []

    def run_client(index: int) -> None:
        sagemaker = runtime()
        for call in range(calls):
            model = models[(index + call * 3) % len(models)]
            try:
                answers.append((model, invoke(sagemaker, "pressure", f"{model}.tar.gz")["model"]))
            except Exception as exc:  # every failure is reported, whatever its kind
                failures.append(f"{model}: {exc}")

    threads = [threading.Thread(target=run_client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 240  # one bound for all the clients together
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(answers) == clients * calls and all(asked == got for asked, got in answers)
    observed = state(mme, "pressure")
    assert observed["used_mb"] <= 4 * 64 + 10 and len(observed["loaded"]) <= 4
    assert sum(m["evictions"] for m in observed["models"].values()) > 0  # memory was short


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return data


def push(sock: socket.socket, total: int, *, chunked: bool = False) -> int:
    """Send up to ``total`` more bytes of body, until the server closes; how many were sent."""
    sent, block = 0, b"x" * (1 << 20)
    frame = b"100000\r\n" + block + b"\r\n" if chunked else block
    try:
        while sent < total:
            sock.sendall(frame)
            sent += len(block)
    except OSError:  # the server closed after its answer
        pass
    return sent


def test_a_body_over_6_mb_is_answered_413_as_sagemaker_does(mme: Any, tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    endpoint(mme, tmp_path, "big", ["m"], budget_mb=1024)
    sagemaker = runtime()
    with pytest.raises(ClientError) as caught:
        sagemaker.invoke_endpoint(
            EndpointName="big", TargetModel="m.tar.gz", Body=b"1" * (LIMIT + 1)
        )
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Code"] == "413"
    assert error["Error"]["Message"] == f"HTTP content length exceeded {LIMIT} bytes."
    assert state(mme, "big")["models"] == {}  # never reached the model
    assert invoke(sagemaker, "big", "m.tar.gz")["model"] == "m"  # the endpoint still serves


@pytest.mark.parametrize("chunked", [False, True], ids=["declared-1GB", "chunked"])
def test_an_oversized_body_is_refused_promptly_without_being_buffered(
    mme: Any, tmp_path: Path, chunked: bool
) -> None:
    endpoint(mme, tmp_path, "huge", ["m"], budget_mb=1024)
    pid, port = mme.read_state().pid, mme.read_state().port
    before = rss_kb(pid)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 1073741824"
    head = (
        b"POST /endpoints/huge/invocations HTTP/1.1\r\nHost: x\r\n"
        b"X-Amzn-SageMaker-Target-Model: m.tar.gz\r\n" + framing + b"\r\n\r\n"
    )
    with raw_request(port, head + (b"" if chunked else b"a few bytes")) as sock:
        if chunked:
            push(sock, 8 << 20, chunked=True)
        answer = read_answer(sock)  # within the socket's timeout: no wait for the body
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"Connection: close" in answer
        push(sock, 128 << 20, chunked=chunked)  # read and dropped by the server: RSS below
    grown_mb = (rss_kb(pid) - before) / 1024
    assert grown_mb < 48, f"mme-local grew by {grown_mb:.0f} MB"
    assert state(mme, "huge")["models"] == {}


def test_a_1_mb_header_is_refused_431_promptly_and_the_endpoint_keeps_serving(
    mme: Any, tmp_path: Path
) -> None:
    endpoint(mme, tmp_path, "heads", ["m"], budget_mb=1024)
    pid, port = mme.read_state().pid, mme.read_state().port
    before = rss_kb(pid)
    head = (
        b"POST /endpoints/heads/invocations HTTP/1.1\r\nHost: x\r\n"
        b"X-Amzn-SageMaker-Target-Model: m.tar.gz\r\nX-Big: "
    )
    with raw_request(port, head) as sock:
        push(sock, 1 << 20)  # 1 MB of one header line that never ends
        answer = read_answer(sock)  # within the socket's timeout
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"Connection: close" in answer
        push(sock, 32 << 20)  # read and dropped by the server: RSS below
    grown_mb = (rss_kb(pid) - before) / 1024
    assert grown_mb < 16, f"mme-local grew by {grown_mb:.0f} MB"
    assert state(mme, "heads")["models"] == {}  # never reached the agent
    assert invoke(runtime(), "heads", "m.tar.gz")["model"] == "m"  # the endpoint still serves


@pytest.mark.parametrize(
    ("name", "budget"),
    [("%2E%2E%2F%2E%2E", 64), ("a_b", 64), ("ok-name", "NaN"), ("ok-name", "Infinity")],
    ids=["dot-dot-slash", "underscore", "nan-budget", "infinite-budget"],
)
def test_an_endpoint_sagemaker_would_refuse_is_refused(mme: Any, name: str, budget: Any) -> None:
    """Endpoint names follow SageMaker's rule (nothing path-like reaches the work folder), and the
    memory budget is a finite number above zero."""
    import http.client

    body = f'{{"s3_prefix": "s3://{BUCKET}/x/", "memory_budget_mb": {budget}}}'
    port = mme.read_state().port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("PUT", f"/mme/endpoints/{name}", body=body)
        answer = connection.getresponse()
        status, text = answer.status, answer.read().decode()
    finally:
        connection.close()
    assert status == 400, text
    assert "ValidationError" in text or "must match" in text or "expected" in text
