"""The clients of an inference component against REAL servers: the control plane and S3 on the
moto server (with the inference-component patches of tests/servers/moto_launcher.py), the runtime
on mme-local's inference-components mode in front of its own real tritonserver. The component is
set up with plain boto3 calls, as SageMaker's documentation does it (S3 upload, CreateModel, an
endpoint config whose variant names no model, CreateEndpoint, CreateInferenceComponent), so these
tests depend on no deploy target: ``invoke_component`` streamed and not, ``mlops perftest
--inference-component --stream`` (time to first token, tokens counted), and the router streaming
a ``sagemaker-ic`` deployment record through ``InvokeEndpointWithResponseStream``.

The model is the ``ticker`` fixture: decoupled, ``count`` tokens 50 ms apart, each carrying the
time it was produced; so arrival times say whether tokens were passed on one by one."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.aws import client
from tests.cli import error_line, run
from tests.conftest import FIXTURES
from tests.integration.test_router import _stream, tenant
from tests.servers.router import RouterClient, RouterProcess

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/mlops-ic"
BUCKET = "ic-clients"
ENDPOINT = "ic-clients"
COMPONENT = "ticker-v1"
IMAGE = "785573368785.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3-cpu"
READY_S = 60.0


def wait_in_service(describe: Any, status_key: str) -> None:
    deadline = time.monotonic() + READY_S
    while True:
        status = describe()[status_key]
        if status == "InService":
            return
        assert status in ("Creating", "Updating"), status
        assert time.monotonic() < deadline, f"not InService in {READY_S:g} s"
        time.sleep(0.1)


def create_component(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """The ticker model as one inference component of a new endpoint; its S3 URI."""
    folder = tmp_path / "ticker"
    shutil.copytree(FIXTURES / "models" / "ticker", folder)
    uri = f"s3://{BUCKET}/{COMPONENT}.tar.gz"
    run(capsys, "package", "render", str(folder), "--format", "sagemaker", "--out", uri)
    sm = client("sagemaker")
    sm.create_model(
        ModelName=COMPONENT,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": uri,
            "Environment": {
                "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "ticker",
                "SAGEMAKER_TRITON_INFERENCE_TYPE": "generate_stream",
            },
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=ENDPOINT,
        ExecutionRoleArn=ROLE,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "InstanceType": "ml.m5.2xlarge",
                "InitialInstanceCount": 1,
                "ManagedInstanceScaling": {
                    "Status": "ENABLED",
                    "MinInstanceCount": 1,
                    "MaxInstanceCount": 1,
                },
                "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
    wait_in_service(lambda: sm.describe_endpoint(EndpointName=ENDPOINT), "EndpointStatus")
    sm.create_inference_component(
        InferenceComponentName=COMPONENT,
        EndpointName=ENDPOINT,
        VariantName="AllTraffic",
        Specification={
            "ModelName": COMPONENT,
            "ComputeResourceRequirements": {
                "NumberOfCpuCoresRequired": 1,
                "MinMemoryRequiredInMb": 128,
            },
        },
        RuntimeConfig={"CopyCount": 1},
    )
    wait_in_service(
        lambda: sm.describe_inference_component(InferenceComponentName=COMPONENT),
        "InferenceComponentStatus",
    )
    return uri


@pytest.fixture
def served(mme_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """moto for the control plane and S3, mme-local (reading moto) for the runtime, and the
    ticker component InService on it."""
    client("s3").create_bucket(Bucket=BUCKET)
    create_component(capsys, tmp_path)
    return mme_local


def ticker_request(count: int, *, stream: bool) -> Any:
    from mlops_cli.deploy.base import InvokeRequest
    from mlops_cli.spec.modelspec import load_spec

    spec = load_spec(FIXTURES / "models" / "ticker")
    return InvokeRequest(inputs={"count": [count]}, spec=spec, stream=stream, timeout=30.0)


def tokens(chunks: Iterator[Any]) -> list[tuple[int, float, float]]:
    """(index, produced at, handed to the caller at (wall clock)) of each chunk, as the caller
    iterates them (a chunk's own ``received_at`` is checked to come no later)."""
    offset = time.time() - time.monotonic()
    found = []
    for chunk in chunks:
        now = time.monotonic()
        assert chunk.received_at <= now
        token = chunk.outputs["token"]  # generate_stream events carry a single value as is
        index, produced = (token if isinstance(token, str) else token[0]).split("@")
        found.append((int(index), float(produced), now + offset))
    return found


def test_invoke_component_streams_each_token_as_it_arrives_and_answers_whole_too(
    served: Any,
) -> None:
    from mlops_cli.deploy.sagemaker_stream import invoke_component

    streamed = tokens(
        invoke_component(ENDPOINT, COMPONENT, "us-east-1", ticker_request(8, stream=True))
    )
    assert [index for index, *_ in streamed] == list(range(8))
    first, last = streamed[0][2], streamed[-1][2]
    assert last - first >= 0.25  # 7 gaps of 50 ms: not handed over together at the end
    # the first token was handed over before the last one was produced: no buffering
    assert streamed[0][2] < streamed[-1][1]

    whole = tokens(
        invoke_component(ENDPOINT, COMPONENT, "us-east-1", ticker_request(4, stream=False))
    )  # the container answers its events in one body on /invocations
    assert [index for index, *_ in whole] == [0, 1, 2, 3]
    assert whole[0][2] >= whole[-1][1]  # nothing handed over before the last was produced


def test_invoke_component_errors_are_one_line(served: Any) -> None:
    from mlops_cli.deploy.sagemaker_stream import invoke_component
    from mlops_cli.errors import MlopsError

    for component, words in (("ticker-v9", "ticker-v9"), (COMPONENT, "")):
        endpoint = ENDPOINT if component != COMPONENT else "no-such-endpoint"
        with pytest.raises(MlopsError) as raised:
            list(invoke_component(endpoint, component, "us-east-1", ticker_request(2, stream=True)))
        message = raised.value.message
        assert "\n" not in message and message.startswith("invoking inference component")
        assert words in message


def test_perftest_streams_and_measures_time_to_first_token(served: Any, capsys: Any) -> None:
    document = run(
        capsys, "perftest", f"sagemaker://{ENDPOINT}", "--inference-component", COMPONENT,
        "--stream", "--template", '{"count": 5}', "--concurrency", "2", "--requests", "6",
        "--warmup", "0s",
    )  # fmt: skip
    [step] = document["steps"]
    assert step["errors"] == 0 and step["ok"] >= 6
    stream = step["stream"]
    assert stream["tokens"] == 5 * step["ok"] and stream["tokens_per_request"] == 5
    assert 0 < stream["ttft_ms"]["p50"] < step["latency_ms"]["p50"]
    assert stream["itl_ms"]["p50"] >= 40  # the ticker's 50 ms between tokens, seen one by one
    assert document["target"]["protocol"] == "sagemaker-ic"


def test_perftest_of_an_unknown_component_counts_sagemakers_refusal(
    served: Any, capsys: Any
) -> None:
    line = error_line(
        capsys, "perftest", f"sagemaker://{ENDPOINT}", "--inference-component", "ticker-v9",
        "--stream", "--template", '{"count": 2}', "--requests", "2", "--warmup", "0s",
        "--quiet", code=1,
    )  # fmt: skip
    assert "every request failed (sagemaker_ValidationError 2)" in line


def test_the_router_streams_a_component_chunk_by_chunk(
    served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.registry import open_registry

    registry_uri = f"sqlite:///{tmp_path / 'registry.db'}"
    folder = tmp_path / "ticker-src"
    shutil.copytree(FIXTURES / "models" / "ticker", folder)
    run(capsys, "register", str(folder), "--alias", "production")
    detail = {  # the sagemaker-ic target's record (the contract)
        "where": ENDPOINT,
        "endpoint": ENDPOINT,
        "inference_component": COMPONENT,
        "model_name": COMPONENT,
        "region": "us-east-1",
        "instance_type": "ml.m5.2xlarge",
        "streaming": True,
        "runtime": "triton-python",
    }
    open_registry(registry_uri).record_deployment(
        "ticker", 1, f"sagemaker-ic:{ENDPOINT}", detail=detail
    )
    with RouterProcess(registry_uri, "--trust-tenant-header") as router:
        _, events = _stream(router.url, "ticker", 8, tenant("acme"))
        status, _, body = RouterClient(router.url).request(
            "POST",
            "/v2/models/ticker/generate",
            b'{"count": 2}',
            tenant("acme"),
        )
    assert len(events) == 8 and {version for *_, version in events} == {"1"}
    first, last = events[0][0], events[-1][0]
    assert last - first >= 0.25  # 7 gaps of 50 ms: the events were not sent together
    assert events[0][0] < events[-1][1]  # the first arrived before the last was produced
    assert status == 200 and body.count(b"data:") == 2  # InvokeEndpoint: the whole answer
