"""The moto test harness (tests/servers) works over HTTP with boto3."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest

from tests.servers.moto import MotoServer

pytestmark = pytest.mark.integration

CREATING_DESCRIBES = 2
ROLE_ARN = "arn:aws:iam::123456789012:role/mlops-test"
FAIL_TAG = {"Key": "mlops-test:fail-update", "Value": "true"}


@pytest.fixture
def moto(aws: MotoServer) -> MotoServer:
    """The session's server (tests/conftest.py), emptied before each test."""
    return aws


def client(server: MotoServer, service: str) -> Any:
    import boto3
    from botocore.config import Config

    env = server.env()
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        # No retries: a 500 from an unimplemented moto action must fail fast.
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


def error_code(exc: pytest.ExceptionInfo[Any]) -> str:
    code: str = exc.value.response["Error"]["Code"]
    return code


def test_s3_round_trip_with_env_only(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")  # endpoint, credentials and region all come from env()
    s3.create_bucket(Bucket="harness")
    s3.put_object(Bucket="harness", Key="a/b.txt", Body=b"hello moto")
    body = s3.get_object(Bucket="harness", Key="a/b.txt")["Body"].read()
    assert body == b"hello moto"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="harness")["Contents"]] == ["a/b.txt"]


def test_dynamodb_conditional_put(moto: MotoServer) -> None:
    from botocore.exceptions import ClientError

    ddb = client(moto, "dynamodb")
    ddb.create_table(
        TableName="locks",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    put = {
        "TableName": "locks",
        "Item": {"pk": {"S": "model-a"}, "owner": {"S": "first"}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    ddb.put_item(**put)
    with pytest.raises(ClientError) as exc:
        ddb.put_item(**{**put, "Item": {"pk": {"S": "model-a"}, "owner": {"S": "second"}}})
    assert error_code(exc) == "ConditionalCheckFailedException"
    item = ddb.get_item(TableName="locks", Key={"pk": {"S": "model-a"}})["Item"]
    assert item["owner"] == {"S": "first"}


def make_config(
    sm: Any, name: str, instance_type: str, tags: list[dict[str, str]] | None = None
) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mme",
                "InstanceType": instance_type,
                "InitialInstanceCount": 1,
            }
        ],
        Tags=tags or [],
    )


def statuses(sm: Any, endpoint: str, count: int) -> list[str]:
    return [sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] for _ in range(count)]


@pytest.fixture
def sagemaker_with_endpoint(moto: MotoServer) -> Any:
    """A SageMaker client, a MultiModel model, config cfg-1 (ml.g5.xlarge) and endpoint ep."""
    sm = client(moto, "sagemaker")
    sm.create_model(
        ModelName="mme",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mms:latest",
            "Mode": "MultiModel",
            "ModelDataUrl": "s3://models/prefix/",
        },
    )
    make_config(sm, "cfg-1", "ml.g5.xlarge")
    arn = sm.create_endpoint(EndpointName="ep", EndpointConfigName="cfg-1")["EndpointArn"]
    assert arn.endswith(":endpoint/ep")
    return sm


def test_sagemaker_model_config_and_endpoint_creating_then_in_service(
    sagemaker_with_endpoint: Any,
) -> None:
    sm = sagemaker_with_endpoint
    assert sm.describe_model(ModelName="mme")["PrimaryContainer"]["Mode"] == "MultiModel"
    variants = sm.describe_endpoint_config(EndpointConfigName="cfg-1")["ProductionVariants"]
    assert variants[0]["InstanceType"] == "ml.g5.xlarge"
    assert (
        statuses(sm, "ep", CREATING_DESCRIBES + 2)
        == ["Creating"] * CREATING_DESCRIBES + ["InService"] * 2
    )
    described = sm.describe_endpoint(EndpointName="ep")
    assert described["EndpointConfigName"] == "cfg-1"
    assert "FailureReason" not in described


def test_gpu_instance_types_accepted_and_junk_still_rejected(sagemaker_with_endpoint: Any) -> None:
    from botocore.exceptions import ClientError

    sm = sagemaker_with_endpoint
    for i, instance_type in enumerate(
        ["ml.g6.2xlarge", "ml.g6e.12xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.inf2.xlarge"]
    ):
        make_config(sm, f"gpu-{i}", instance_type)
    with pytest.raises(ClientError) as exc:
        make_config(sm, "junk", "gpu.huge")
    assert error_code(exc) == "ValidationException"


def test_update_endpoint_updating_then_in_service_on_new_config(
    sagemaker_with_endpoint: Any,
) -> None:
    from botocore.exceptions import ClientError

    sm = sagemaker_with_endpoint
    make_config(sm, "cfg-2", "ml.g6.2xlarge")
    # Like real SageMaker, an endpoint that is still Creating cannot be updated.
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName="ep", EndpointConfigName="cfg-2")
    assert error_code(exc) == "ValidationException"
    assert "in-progress" in exc.value.response["Error"]["Message"]

    statuses(sm, "ep", CREATING_DESCRIBES + 1)  # reach InService
    arn = sm.update_endpoint(EndpointName="ep", EndpointConfigName="cfg-2")["EndpointArn"]
    listed = sm.list_endpoints()["Endpoints"]  # listing does not advance the lifecycle
    assert [(e["EndpointArn"], e["EndpointStatus"]) for e in listed] == [(arn, "Updating")]
    assert statuses(sm, "ep", CREATING_DESCRIBES + 1) == ["Updating"] * CREATING_DESCRIBES + [
        "InService"
    ]
    described = sm.describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "cfg-2"


def test_update_endpoint_errors_for_missing_endpoint_or_config(
    sagemaker_with_endpoint: Any,
) -> None:
    from botocore.exceptions import ClientError

    sm = sagemaker_with_endpoint
    statuses(sm, "ep", CREATING_DESCRIBES + 1)
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName="no-such-ep", EndpointConfigName="cfg-1")
    assert error_code(exc) == "ValidationException"
    assert "Could not find endpoint" in exc.value.response["Error"]["Message"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName="ep", EndpointConfigName="no-such-cfg")
    assert error_code(exc) == "ValidationException"
    assert "Could not find endpoint configuration" in exc.value.response["Error"]["Message"]
    assert sm.describe_endpoint(EndpointName="ep")["EndpointConfigName"] == "cfg-1"


def test_failure_injection_tag_makes_update_fail(sagemaker_with_endpoint: Any) -> None:
    sm = sagemaker_with_endpoint
    statuses(sm, "ep", CREATING_DESCRIBES + 1)
    make_config(sm, "cfg-bad", "ml.g5.2xlarge", tags=[FAIL_TAG])
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="cfg-bad")
    assert statuses(sm, "ep", CREATING_DESCRIBES) == ["Updating"] * CREATING_DESCRIBES
    described = sm.describe_endpoint(EndpointName="ep")
    assert described["EndpointStatus"] == "Failed"
    assert "mlops-test" in described["FailureReason"]
    assert described["EndpointConfigName"] == "cfg-bad"

    # A custom reason via the second tag, and the rule also applies to CreateEndpoint.
    reason = {"Key": "mlops-test:failure-reason", "Value": "CUDA out of memory"}
    make_config(sm, "cfg-bad-2", "ml.g5.2xlarge", tags=[FAIL_TAG, reason])
    sm.create_endpoint(EndpointName="ep-2", EndpointConfigName="cfg-bad-2")
    assert statuses(sm, "ep-2", CREATING_DESCRIBES + 1)[-1] == "Failed"
    assert sm.describe_endpoint(EndpointName="ep-2")["FailureReason"] == "CUDA out of memory"


def test_creating_describes_zero_is_in_service_at_once() -> None:
    if importlib.util.find_spec("moto") is None and os.environ.get("CI") != "true":
        pytest.skip("moto not installed")
    with MotoServer(creating_describes=0) as server:
        sm = client(server, "sagemaker")
        sm.create_model(
            ModelName="mme", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "img"}
        )
        make_config(sm, "cfg-1", "ml.p5.48xlarge")
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="cfg-1")
        assert statuses(sm, "ep", 1) == ["InService"]
        pid = server.pid
    assert pid is not None and not server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_reset_empties_state(moto: MotoServer, sagemaker_with_endpoint: Any) -> None:
    sm = sagemaker_with_endpoint
    s3 = client(moto, "s3")
    s3.create_bucket(Bucket="to-be-reset")
    assert sm.list_endpoints()["Endpoints"]
    moto.reset()
    assert s3.list_buckets()["Buckets"] == []
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
