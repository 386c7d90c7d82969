"""mme-local end to end: moto for S3, the mme-local server (started as `mlops local up --mme`
does), a REAL multi-model-server with the SageMaker inference toolkit behind it, and boto3's
sagemaker-runtime client pointed at it through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME with no other
change. Every deploy sends the version's warmup through the endpoint (one invocation, which loads
the model) before it switches anything: the counts below include it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_cli.aws import client
from tests.cli import error_line, run
from tests.conftest import require
from tests.servers.mme_models import evil_tarball, make_model

pytestmark = pytest.mark.integration

BUCKET = "mme-local-models"


@pytest.fixture(scope="module")
def mme_server(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One mme-local server for the module, in its own workspace, reading S3 from moto."""
    from tests.servers.mme_local import running_mme_local
    from tests.servers.mms import mms_unavailable_reason

    reason = mms_unavailable_reason()
    require(reason is None, f"multi-model-server cannot run: {reason}")
    with running_mme_local(moto_server, tmp_path_factory.mktemp("mme-ws") / ".mlops") as manager:
        yield manager


@pytest.fixture
def env(aws: Any, mme_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.servers.mme_local import point_at

    point_at(mme_server, tmp_path, monkeypatch)
    client("s3").create_bucket(Bucket=BUCKET)
    return mme_server


def endpoint_file(tmp_path: Path, name: str, *, budget: float = 1024) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "s3_prefix": f"s3://{BUCKET}/{name}/",
                "local": {"backend": "mms", "memory_budget_mb": budget},
            }
        )
    )
    return path


def register(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, version: int, **kw: Any
) -> None:
    folder = make_model(tmp_path / "src", name, version=version, scale=10 * version, **kw)
    assert run(capsys, "register", str(folder))["version"] == version


def deploy(capsys: pytest.CaptureFixture[str], ref: str, endpoint: Path, *extra: str) -> Any:
    args = ["deploy", ref, "--target", "mme-local", "--endpoint", str(endpoint), "--drain", "0"]
    return run(capsys, *args, *extra)


def runtime() -> Any:
    import boto3

    return boto3.client("sagemaker-runtime", region_name="us-east-1")


def invoke(endpoint: str, target: str, values: list[float]) -> dict[str, Any]:
    response = runtime().invoke_endpoint(
        EndpointName=endpoint,
        TargetModel=target,
        Body=json.dumps({"inputs": values}).encode(),
        ContentType="application/json",
    )
    answer: dict[str, Any] = json.loads(response["Body"].read())
    return answer


def endpoint_metrics(server: Any, name: str) -> dict[str, Any]:
    from mlops_cli.local.mme import http_json

    found: dict[str, Any] = http_json(f"{server.url()}/mme/endpoints/{name}")
    return found


def test_two_models_two_versions_each_answer_from_the_right_version(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, "full")
    for name in ("alpha", "beta"):
        register(capsys, tmp_path, name, 1)
        register(capsys, tmp_path, name, 2)
        deploy(capsys, f"{name}@1", endpoint)  # -> the default alias
        deploy(capsys, f"{name}@2", endpoint, "--alias", "staging")  # v1 stays in use
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix="full/")["Contents"]
    assert {o["Key"] for o in listed} == {
        f"full/{m}-v{v}.tar.gz" for m in ("alpha", "beta") for v in (1, 2)
    }

    for name in ("alpha", "beta"):
        for version in (1, 2):
            answer = invoke("full", f"{name}-v{version}.tar.gz", [1.0, 2.0])
            assert (answer["model"], answer["version"]) == (name, version)
            assert answer["outputs"] == [10.0 * version, 20.0 * version]
    out = run(capsys, "invoke", "beta@2", "--input", '{"inputs": [3]}')
    assert out["outputs"] == {"model": "beta", "version": 2, "outputs": [60.0]}

    metrics = endpoint_metrics(env, "full")["models"]
    assert metrics["beta-v2.tar.gz"]["invocations"] == 3  # the deploy's warmup, then two
    assert metrics["beta-v2.tar.gz"]["loads"] == 1 and metrics["beta-v2.tar.gz"]["cache_hits"] == 2
    assert metrics["alpha-v1.tar.gz"]["last_load_seconds"] > 0

    again = deploy(capsys, "alpha@1", endpoint)
    assert again["changes"] is False
    rows = run(capsys, "status")["deployments"]
    assert {(r["model"], r["version"], r["state"]) for r in rows} == {
        (m, v, "READY") for m in ("alpha", "beta") for v in (1, 2)
    }

    # Streaming: SageMaker's response stream has no TargetModel; say so clearly.
    line = error_line(capsys, "invoke", "alpha@1", "--input", '{"inputs": [1]}', "--stream", code=1)
    assert "TargetModel" in line


def test_least_recently_used_model_is_unloaded_beyond_the_budget_and_reloaded(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, "lru", budget=150)  # models declare 64 MB: two fit
    for name in ("a", "b", "c"):
        register(capsys, tmp_path, name, 1)
        deploy(capsys, f"{name}@1", endpoint)  # each warmup loads it: c's evicts a
    state = endpoint_metrics(env, "lru")
    assert [m["target"] for m in state["loaded"]] == ["b-v1.tar.gz", "c-v1.tar.gz"]
    invoke("lru", "b-v1.tar.gz", [1])  # a hit: c is now the least recently used
    invoke("lru", "a-v1.tar.gz", [1])  # reloads a, evicts c
    invoke("lru", "c-v1.tar.gz", [1])  # reloads c, evicts b
    state = endpoint_metrics(env, "lru")
    assert {m["target"] for m in state["loaded"]} == {"a-v1.tar.gz", "c-v1.tar.gz"}
    assert state["used_mb"] <= 150
    models = state["models"]
    assert [models[f"{n}-v1.tar.gz"]["evictions"] for n in "abc"] == [1, 1, 1]
    assert invoke("lru", "b-v1.tar.gz", [2])["outputs"] == [20.0]  # reloaded, evicts a
    models = endpoint_metrics(env, "lru")["models"]
    assert (models["b-v1.tar.gz"]["loads"], models["b-v1.tar.gz"]["cache_hits"]) == (2, 1)
    assert (models["a-v1.tar.gz"]["loads"], models["a-v1.tar.gz"]["evictions"]) == (2, 2)


def test_handler_error_is_a_model_error_with_the_container_message(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, "errors")
    register(capsys, tmp_path, "picky", 1, fail_on_input=13)  # answers its warmup
    deploy(capsys, "picky@1", endpoint)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        invoke("errors", "picky-v1.tar.gz", [13])
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "cannot take 13" in error["OriginalMessage"]
    line = error_line(capsys, "invoke", "picky@1", "--input", '{"inputs": [13]}', code=1)
    assert "the model failed (HTTP 500)" in line and "cannot take 13" in line
    [row] = run(capsys, "status")["deployments"]  # it answered since its load: still READY
    assert row["state"] == "READY" and row["failures"] == 2


def test_missing_tarball_is_one_clear_line_and_changes_nothing(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.local.mme import http_json

    endpoint = endpoint_file(tmp_path, "missing")
    register(capsys, tmp_path, "gone", 1)
    deploy(capsys, "gone@1", endpoint)
    client("s3").delete_object(Bucket=BUCKET, Key="missing/gone-v1.tar.gz")
    # Loaded by the deploy's warmup, it still answers (as SageMaker's cache does) until unloaded.
    assert invoke("missing", "gone-v1.tar.gz", [1])["model"] == "gone"
    http_json(f"{env.url()}/mme/endpoints/missing/models/gone-v1.tar.gz", method="DELETE")
    line = error_line(capsys, "invoke", "gone@1", "--input", '{"inputs": [1]}', code=1)
    assert "Failed to download model data" in line and "missing/gone-v1.tar.gz" in line
    assert endpoint_metrics(env, "missing")["loaded"] == []
    [row] = run(capsys, "status", code=1)["deployments"]
    assert row["state"] == "DRIFT" and "missing" in row["note"]


def test_tarball_with_path_traversal_is_refused_and_writes_nothing_outside(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, "evil")
    register(capsys, tmp_path, "good", 1)
    deploy(capsys, "good@1", endpoint)
    client("s3").put_object(Bucket=BUCKET, Key="evil/evil-v1.tar.gz", Body=evil_tarball("pwned"))
    workdir = Path(env.workdir)
    before = {p for p in workdir.rglob("*")}
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        invoke("evil", "evil-v1.tar.gz", [1])
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "leaves the archive's folder" in caught.value.response["Error"]["Message"]
    assert not any(p.name == "pwned" for p in workdir.parent.rglob("*"))
    leftovers = {p for p in workdir.rglob("*")} - before
    assert [p for p in leftovers if not p.is_dir()] == []  # not even inside its own folder
    assert invoke("evil", "good-v1.tar.gz", [1])["model"] == "good"  # the endpoint still serves


def test_retire_unloads_the_old_version_and_removes_its_tarball(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, "retire")
    register(capsys, tmp_path, "m", 1)
    register(capsys, tmp_path, "m", 2)
    deploy(capsys, "m@1", endpoint)
    invoke("retire", "m-v1.tar.gz", [1])
    result = deploy(capsys, "m@2", endpoint)
    assert result["retired"] == [1]
    state = endpoint_metrics(env, "retire")
    assert "m-v1.tar.gz" not in {m["target"] for m in state["loaded"]}
    keys = {o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "retire/m-v1.tar.gz" not in keys and "retire/m-v2.tar.gz" in keys
    assert invoke("retire", "m-v2.tar.gz", [1])["version"] == 2


def test_local_up_mme_starts_status_and_down_stop_it(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_cli.local.processes import is_same_process

    monkeypatch.setenv("MLOPS_WORKSPACE", str(tmp_path / "ws"))
    started = run(capsys, "local", "up", "--mme")
    assert started["already_running"] is False and started["url"].startswith("http://127.0.0.1:")
    assert run(capsys, "local", "up", "--mme")["already_running"] is True
    observed = run(capsys, "local", "status", "--mme")
    assert observed["state"] == "running" and observed["endpoints"] == {}
    state = json.loads((tmp_path / "ws" / "local" / "mme.json").read_text())
    assert run(capsys, "local", "down", "--mme")["was_running"] is True
    assert not is_same_process(state["pid"], state["start_ticks"])
    run(capsys, "local", "status", "--mme", code=1)


def test_response_stream_route_frames_the_answer_as_aws_event_stream(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    from botocore.eventstream import EventStreamBuffer
    from botocore.exceptions import ClientError

    endpoint = endpoint_file(tmp_path, "stream")
    register(capsys, tmp_path, "s", 1)
    deploy(capsys, "s@1", endpoint)
    request = urllib.request.Request(
        f"{env.url()}/endpoints/stream/invocations-response-stream",
        data=json.dumps({"inputs": [4]}).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Target-Model": "s-v1.tar.gz",
        },
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        buffer = EventStreamBuffer()
        buffer.add_data(response.read())
    [message] = list(buffer)
    assert message.headers[":event-type"] == "PayloadPart"
    assert json.loads(message.payload)["outputs"] == [40.0]

    # boto3 has no TargetModel for this operation: the endpoint says why it refuses.
    with pytest.raises(ClientError) as caught:
        runtime().invoke_endpoint_with_response_stream(
            EndpointName="stream", Body=b'{"inputs": [1]}', ContentType="application/json"
        )
    assert "InvokeEndpointWithResponseStream has no TargetModel" in str(caught.value)


def test_the_router_calls_a_multi_model_endpoint_with_the_tenants_target_model(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.servers.router import RouterClient, RouterProcess

    endpoint = endpoint_file(tmp_path, "routed")
    register(capsys, tmp_path, "alpha", 1)
    register(capsys, tmp_path, "alpha", 2)
    deploy(capsys, "alpha@1", endpoint)
    deploy(capsys, "alpha@2", endpoint, "--alias", "staging")
    run(capsys, "route", "set", "acme", "alpha", "@staging")
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    body = json.dumps({"inputs": [1.0, 2.0]}).encode()
    with RouterProcess(registry, "--trust-tenant-header") as router:
        client = RouterClient(router.url)
        answers = {
            tenant: client.request("POST", "/v2/models/alpha/infer", body, {"X-Tenant-Id": tenant})
            for tenant in ("acme", "globex")
        }
        stream = client.request(
            "POST", "/v2/models/alpha/generate_stream", body, {"X-Tenant-Id": "acme"}
        )
    for tenant, version in (("acme", 2), ("globex", 1)):
        status, headers, data = answers[tenant]
        assert status == 200 and headers["x-model-version"] == str(version)
        assert json.loads(data) == {
            "model": "alpha",
            "version": version,
            "outputs": [10.0 * version, 20.0 * version],
        }
    assert stream[0] == 400 and "cannot stream" in json.loads(stream[2])["error"]
    calls = endpoint_metrics(env, "routed")["models"]
    assert calls["alpha-v2.tar.gz"]["invocations"] == 2  # the deploy's warmup, then the router's
    assert calls["alpha-v1.tar.gz"]["invocations"] == 2
