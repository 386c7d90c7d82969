"""mme-local in inference-components mode: a REAL mme-local process (its own tritonserver) reads
the components from the moto server's SageMaker control plane (patched with
CreateInferenceComponent & co.) and answers boto3's ``sagemaker-runtime`` with
``InferenceComponentName``, buffered and streamed, with SageMaker's errors.

The control plane is set up with plain boto3 calls (S3 upload, CreateModel, an endpoint config
without ModelName, CreateEndpoint, CreateInferenceComponent, waits for InService), as the
``sagemaker-ic`` deploy target does. One mme-local serves the whole module, started with a short
upstream timeout so that a stalled stream fails within the test."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, require

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
BUCKET = "ic-models"
ENDPOINT = "ic-endpoint"
OTHER_ENDPOINT = "ic-other"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-ic"
TRITON_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/sagemaker-tritonserver:24.09-py3-cpu"
UPSTREAM_TIMEOUT_S = 3.0
STALLER = """
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            for word in (b"first", b"late"):
                out = pb_utils.Tensor("token", np.array([word], dtype=object))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
                time.sleep(10)
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""


@dataclass
class Setup:
    url: str
    moto: Any
    sagemaker: Any
    runtime: Any
    s3: Any


def triton_tarball(folder: Path) -> bytes:
    """``folder`` as the sagemaker-ic target publishes it: ``<name>/config.pbtxt`` and
    ``<name>/1/<files>``."""
    from mlops_cli.render.triton import config_pbtxt
    from mlops_cli.spec.modelspec import load_spec

    spec = load_spec(folder)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        config = config_pbtxt(spec, model_name=spec.name, device="cpu").encode()
        info = tarfile.TarInfo(f"{spec.name}/config.pbtxt")
        info.size = len(config)
        tar.addfile(info, io.BytesIO(config))
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, f"{spec.name}/1/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def wait_status(describe: Any, key: str, wanted: str = "InService") -> dict[str, Any]:
    for _ in range(50):
        document: dict[str, Any] = describe()
        if document[key] == wanted:
            return document
        time.sleep(0.05)
    raise AssertionError(f"{key} is {document[key]}, not {wanted}")


def ic_endpoint(sagemaker: Any, name: str) -> None:
    variant = {
        "VariantName": "AllTraffic",
        "InstanceType": "ml.m5.xlarge",
        "InitialInstanceCount": 1,
        "ManagedInstanceScaling": {
            "Status": "ENABLED",
            "MinInstanceCount": 1,
            "MaxInstanceCount": 2,
        },
        "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
    }
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-config", ExecutionRoleArn=ROLE, ProductionVariants=[variant]
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    wait_status(lambda: sagemaker.describe_endpoint(EndpointName=name), "EndpointStatus")


def component(
    setup: Setup,
    name: str,
    folder: Path,
    *,
    endpoint: str = ENDPOINT,
    environment: dict[str, str] | None = None,
    wait: bool = True,
) -> None:
    """Publish ``folder`` as model ``name`` and deploy it as component ``name`` of ``endpoint``."""
    key = f"models/{name}.tar.gz"
    setup.s3.put_object(Bucket=BUCKET, Key=key, Body=triton_tarball(folder))
    from mlops_cli.spec.modelspec import load_spec

    model_folder = load_spec(folder).name
    env = {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": model_folder, **(environment or {})}
    setup.sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": TRITON_IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/{key}",
            "Environment": env,
        },
    )
    setup.sagemaker.create_inference_component(
        InferenceComponentName=name,
        EndpointName=endpoint,
        VariantName="AllTraffic",
        Specification={
            "ModelName": name,
            "ComputeResourceRequirements": {
                "NumberOfCpuCoresRequired": 1,
                "MinMemoryRequiredInMb": 1024,
            },
        },
        RuntimeConfig={"CopyCount": 1},
    )
    if wait:
        wait_status(
            lambda: setup.sagemaker.describe_inference_component(InferenceComponentName=name),
            "InferenceComponentStatus",
        )


@pytest.fixture(scope="module")
def setup(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """moto with two endpoints for components, and one mme-local process reading it."""
    require(importlib.util.find_spec("pytriton") is not None, "the 'triton' extra is not installed")
    import boto3
    from botocore.config import Config

    moto_server.reset()
    workdir = tmp_path_factory.mktemp("mme-ic")
    ready = workdir / "ready.json"
    env = {**os.environ, **moto_server.env(), "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", None)
    with open(workdir / "mme.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlops_cli.mme",
                "--workdir",
                str(workdir / "mme"),
                "--ready-file",
                str(ready),
                "--upstream-timeout-s",
                str(UPSTREAM_TIMEOUT_S),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its containers are in its process group
        )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, (workdir / "mme.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mme-local did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
        keys = {k: v for k, v in moto_server.env().items() if k.startswith("AWS_") and "KEY" in k}
        credentials = {
            "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
        }
        sagemaker = boto3.client(
            "sagemaker", endpoint_url=moto_server.endpoint, region_name=REGION, **credentials
        )
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=url,
            region_name=REGION,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
            **credentials,
        )
        s3 = boto3.client(
            "s3", endpoint_url=moto_server.endpoint, region_name=REGION, **credentials
        )
        s3.create_bucket(Bucket=BUCKET)
        ic_endpoint(sagemaker, ENDPOINT)
        ic_endpoint(sagemaker, OTHER_ENDPOINT)
        yield Setup(url, moto_server, sagemaker, runtime, s3)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def components(setup: Setup) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{setup.url}/mme/components", timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
    listed: dict[str, Any] = document["components"]
    return listed


def infer(setup: Setup, ic: str, endpoint: str = ENDPOINT) -> list[float]:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [0.0, 5.0]}]}
    response = setup.runtime.invoke_endpoint(
        EndpointName=endpoint,
        InferenceComponentName=ic,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    data: list[float] = json.loads(response["Body"].read())["outputs"][0]["data"]
    return data


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def test_invoke_endpoint_with_a_component_answers_and_is_counted(setup: Setup) -> None:
    component(setup, "answer-v1", FIXTURES / "models" / "answer")
    assert infer(setup, "answer-v1") == [1.0, 1.0]
    assert infer(setup, "answer-v1") == [1.0, 1.0]
    listed = components(setup)["answer-v1"]
    assert listed["endpoint"] == ENDPOINT and listed["state"] == "loaded"
    assert (listed["invocations"], listed["errors"], listed["loads"]) == (2, 0, 1)
    assert listed["inference_type"] == "infer"


def test_response_stream_passes_each_token_on_as_it_comes(setup: Setup) -> None:
    component(
        setup,
        "tiny-lm-v1",
        ROOT / "examples" / "tiny-lm",
        environment={"SAGEMAKER_TRITON_INFERENCE_TYPE": "generate_stream"},
    )
    body = json.dumps({"prompt": "the", "max_tokens": 12}).encode()
    request = {"EndpointName": ENDPOINT, "InferenceComponentName": "tiny-lm-v1", "Body": body}
    # invocations: the whole SSE body of the container (which loads the component)
    whole = setup.runtime.invoke_endpoint(ContentType="application/json", **request)
    sse = whole["Body"].read().decode()
    tokens = [
        json.loads(line[5:])["token"] for line in sse.splitlines() if line.startswith("data:")
    ]
    assert len(tokens) >= 4, sse
    started = time.monotonic()
    response = setup.runtime.invoke_endpoint_with_response_stream(
        ContentType="application/json", **request
    )
    assert response["ContentType"].startswith("text/event-stream")
    arrivals, parts = [], []
    for event in response["Body"]:
        arrivals.append(time.monotonic())
        parts.append(event["PayloadPart"]["Bytes"])
    streamed = b"".join(parts).decode()
    assert streamed == sse  # the same answer, cut where the container's pieces came
    assert len(parts) >= 3
    # Token by token: the events are spread over the generation (the model paces its words),
    # not all released at its end.
    assert arrivals[-1] - arrivals[0] > arrivals[0] - started
    assert components(setup)["tiny-lm-v1"]["inference_type"] == "generate_stream"


def test_a_stream_that_stalls_ends_with_a_model_stream_error(setup: Setup, tmp_path: Path) -> None:
    from botocore.exceptions import EventStreamError

    folder = tmp_path / "staller"
    folder.mkdir()
    (folder / "mlops.yaml").write_text(
        (FIXTURES / "models" / "ticker" / "mlops.yaml").read_text().replace("ticker", "staller")
    )
    (folder / "model.py").write_text(STALLER)
    component(
        setup,
        "staller",
        folder,
        environment={"SAGEMAKER_TRITON_INFERENCE_TYPE": "generate_stream"},
    )
    response = setup.runtime.invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT,
        InferenceComponentName="staller",
        Body=json.dumps({"count": 1}).encode(),
        ContentType="application/json",
    )
    received = []
    with pytest.raises(EventStreamError, match="ModelStreamError") as caught:
        for event in response["Body"]:
            received.append(event["PayloadPart"]["Bytes"])
    assert b"first" in b"".join(received)  # the part sent before the stall came through
    assert f"nothing for {UPSTREAM_TIMEOUT_S:g} s" in str(caught.value)
    assert components(setup)["staller"]["errors"] >= 1


def test_requests_the_runtime_refuses(setup: Setup) -> None:
    component(setup, "elsewhere", FIXTURES / "models" / "answer", endpoint=OTHER_ENDPOINT)
    invoke = setup.runtime.invoke_endpoint
    body = {"Body": b"{}", "ContentType": "application/json"}
    code, message = error_of(invoke, EndpointName=ENDPOINT, **body)
    assert code == "ValidationError"
    assert message.startswith("Inference Component Name header is required for endpoints")
    code, message = error_of(
        invoke, EndpointName=ENDPOINT, InferenceComponentName="no-such-component", **body
    )
    assert code == "ValidationError" and "no-such-component" in message
    assert "not found" in message
    code, message = error_of(
        invoke, EndpointName=ENDPOINT, InferenceComponentName="elsewhere", **body
    )
    assert code == "ValidationError" and f"not found for endpoint {ENDPOINT}" in message
    code, message = error_of(
        invoke, EndpointName="no-such-endpoint", InferenceComponentName="elsewhere", **body
    )
    assert code == "ValidationError" and "Endpoint no-such-endpoint" in message


def test_a_container_that_would_not_start_is_a_model_error(setup: Setup) -> None:
    answer = FIXTURES / "models" / "answer"
    component(setup, "bad-type", answer, environment={"SAGEMAKER_TRITON_INFERENCE_TYPE": "streamy"})
    component(
        setup, "no-folder", answer, environment={"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "nope"}
    )
    for _ in range(2):  # the second time from what the first found, as a failed component
        code, message = error_of(infer, setup=setup, ic="bad-type")
        assert code == "ModelError"
        assert "ERROR: Invalid SAGEMAKER_TRITON_INFERENCE_TYPE 'streamy'" in message
        code, message = error_of(infer, setup=setup, ic="no-folder")
        assert code == "ModelError"
        assert "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME nope does not exist" in message
    listed = components(setup)
    assert listed["bad-type"]["state"] == "failed" and listed["bad-type"]["loads"] == 0
    assert listed["no-folder"]["load_failures"] == 1  # not loaded again: it stays failed


def test_a_component_not_in_service_or_deleted_is_refused(setup: Setup) -> None:
    component(setup, "answer-v2", FIXTURES / "models" / "answer", wait=False)
    code, message = error_of(infer, setup=setup, ic="answer-v2")  # still Creating
    assert code == "ValidationError" and "is not in service" in message
    wait_status(
        lambda: setup.sagemaker.describe_inference_component(InferenceComponentName="answer-v2"),
        "InferenceComponentStatus",
    )
    assert infer(setup, "answer-v2") == [1.0, 1.0]
    setup.sagemaker.delete_inference_component(InferenceComponentName="answer-v2")
    time.sleep(1.1)  # the control plane is asked again at most once a second
    code, message = error_of(infer, setup=setup, ic="answer-v2")  # Deleting
    assert code == "ValidationError" and "is not in service" in message
    for _ in range(50):  # until the deletion has ended
        try:
            setup.sagemaker.describe_inference_component(InferenceComponentName="answer-v2")
        except Exception:
            break
        time.sleep(0.05)
    time.sleep(1.1)
    code, message = error_of(infer, setup=setup, ic="answer-v2")
    assert code == "ValidationError" and "answer-v2" in message and "not found" in message
    assert "answer-v2" not in components(setup)


def test_a_component_whose_model_changed_is_reloaded(setup: Setup, tmp_path: Path) -> None:
    import shutil

    component(setup, "answer-swap", FIXTURES / "models" / "answer")
    assert infer(setup, "answer-swap") == [1.0, 1.0]
    folder = tmp_path / "answer"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    (folder / "weights" / "answer.txt").write_text("2\n")
    key = "models/answer-swap-2.tar.gz"
    setup.s3.put_object(Bucket=BUCKET, Key=key, Body=triton_tarball(folder))
    setup.sagemaker.create_model(
        ModelName="answer-swap-2",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": TRITON_IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/{key}",
            "Environment": {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "answer"},
        },
    )
    old = components(setup)["answer-swap"]["container_name"]
    setup.sagemaker.update_inference_component(
        InferenceComponentName="answer-swap",
        Specification={
            "ModelName": "answer-swap-2",
            "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 1024},
        },
    )
    answers = []
    for _ in range(40):  # the running copy answers while the update is in progress
        answers.append(infer(setup, "answer-swap")[0])
        if answers[-1] == 2.0:
            break
        time.sleep(0.25)
    assert answers[0] == 1.0 and answers[-1] == 2.0, answers
    listed = components(setup)["answer-swap"]
    assert listed["model_name"] == "answer-swap-2" and listed["container_name"] != old


def test_a_component_header_on_an_endpoint_with_a_model_is_refused(setup: Setup) -> None:
    setup.sagemaker.create_model(
        ModelName="plain-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": TRITON_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/plain.tar.gz"},
    )
    setup.sagemaker.create_endpoint_config(
        EndpointConfigName="plain-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "plain-model",
                "InstanceType": "ml.m5.xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    setup.sagemaker.create_endpoint(EndpointName="plain", EndpointConfigName="plain-config")
    wait_status(lambda: setup.sagemaker.describe_endpoint(EndpointName="plain"), "EndpointStatus")
    code, message = error_of(infer, setup=setup, ic="answer-v1", endpoint="plain")
    assert code == "ValidationError"
    assert message.startswith("Inference Component Name header is not allowed for endpoints")
