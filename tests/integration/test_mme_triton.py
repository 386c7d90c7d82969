"""mme-local with its second container: a REAL tritonserver of mme-local's own behind the
sagemaker-runtime protocol. Python-backend packages are published as Triton repository entries
(``<name>/config.pbtxt``, ``<name>/1/...``), fetched from S3 (moto), loaded by Triton as they are,
and answered as KServe v2 JSON through boto3 with TargetModel."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_cli.aws import client
from mlops_cli.mme.agent import container_name
from tests.cli import run
from tests.conftest import FIXTURES, triton_request

pytestmark = pytest.mark.integration

BUCKET = "mme-triton-models"


@pytest.fixture
def mme_triton(mme_local: Any) -> Any:
    client("s3").create_bucket(Bucket=BUCKET)
    return mme_local


def test_triton_backend_serves_each_version_through_the_runtime_protocol(
    mme_triton: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    endpoint = tmp_path / "endpoint.yaml"
    endpoint.write_text(
        yaml.safe_dump(
            {
                "name": "gpu-mme",
                "s3_prefix": f"s3://{BUCKET}/gpu-mme/",
                "local": {"backend": "triton", "memory_budget_mb": 1024},
            }
        )
    )
    for answer in (1, 2):
        folder = tmp_path / f"answer-{answer}"
        shutil.copytree(FIXTURES / "models" / "answer", folder)
        (folder / "weights" / "answer.txt").write_text(f"{answer}\n")
        run(capsys, "register", str(folder))
        run(
            capsys, "deploy", f"answer@{answer}", "--target", "mme-local",
            "--endpoint", str(endpoint), "--no-switch",
        )  # fmt: skip
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [0.0, 5.0]}]}
    for answer in (2, 1, 2):
        response = runtime.invoke_endpoint(
            EndpointName="gpu-mme",
            TargetModel=f"answer-v{answer}.tar.gz",
            Body=json.dumps(body).encode(),
            ContentType="application/json",
        )
        outputs = json.loads(response["Body"].read())["outputs"]
        assert outputs[0]["name"] == "y" and outputs[0]["data"] == [float(answer)] * 2
    from mlops_cli.local.mme import http_json

    metrics = http_json(f"{mme_triton.url()}/mme/endpoints/gpu-mme")
    assert metrics["backend"] == "triton"
    for answer, calls in ((1, 2), (2, 3)):  # the deploy's warmup (the load), then the calls
        model = metrics["models"][f"answer-v{answer}.tar.gz"]
        assert (model["loads"], model["invocations"]) == (1, calls)
    invoked = run(capsys, "invoke", "answer@2", "--input", '{"x": [3]}')
    assert invoked["outputs"]["y"] == [2.0] and invoked["target"].startswith("mme-local:")
    url = http_json(f"{mme_triton.url()}/mme/status")["containers"]["triton"]
    for answer in (1, 2):  # the agent's own names for them in the container
        name = container_name("gpu-mme", f"answer-v{answer}.tar.gz")
        stats = triton_request(url, f"/v2/models/{name}/stats")
        assert stats["model_stats"][0]["inference_stats"]["success"]["count"] >= 1  # type: ignore[index]
        triton_request(url, f"/v2/repository/models/{name}/unload", {})
    # The container lost them (unloaded behind mme-local's back): the first call fails with the
    # container's message, and mme-local forgets the model, so the next call loads it again.
    from botocore.exceptions import ClientError

    time.sleep(1.5)  # Triton finishes an unload in the background
    request = {
        "EndpointName": "gpu-mme",
        "TargetModel": "answer-v1.tar.gz",
        "ContentType": "application/json",
    }
    with pytest.raises(ClientError, match="ModelError"):
        runtime.invoke_endpoint(Body=json.dumps(body).encode(), **request)
    again = runtime.invoke_endpoint(Body=json.dumps(body).encode(), **request)
    assert json.loads(again["Body"].read())["outputs"][0]["data"] == [1.0, 1.0]
    metrics = http_json(f"{mme_triton.url()}/mme/endpoints/gpu-mme")
    assert metrics["models"]["answer-v1.tar.gz"]["loads"] == 2
