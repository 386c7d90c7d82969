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


# -- inference components (moto_launcher.py patches 6-8) -----------------------------------

IC_VARIANT = {
    "VariantName": "AllTraffic",
    "InstanceType": "ml.g5.12xlarge",
    "InitialInstanceCount": 1,
    "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2},
    "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
}
COMPUTE = {"NumberOfCpuCoresRequired": 2, "NumberOfAcceleratorDevicesRequired": 1}
COPY_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"


def spec(model: str = "llm-v1", memory: int = 1024) -> dict[str, Any]:
    return {
        "ModelName": model,
        "ComputeResourceRequirements": {**COMPUTE, "MinMemoryRequiredInMb": memory},
    }


def ic_endpoint(sm: Any, name: str) -> None:
    """An endpoint for inference components (config without ModelName), brought InService."""
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-cfg", ProductionVariants=[IC_VARIANT], ExecutionRoleArn=ROLE_ARN
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-cfg")
    assert statuses(sm, name, CREATING_DESCRIBES + 1)[-1] == "InService"


def create_ic(sm: Any, name: str, endpoint: str = "ic-ep", **extra: Any) -> str:
    arn: str = sm.create_inference_component(
        InferenceComponentName=name,
        EndpointName=endpoint,
        VariantName="AllTraffic",
        Specification=extra.pop("Specification", spec()),
        RuntimeConfig=extra.pop("RuntimeConfig", {"CopyCount": 2}),
        **extra,
    )["InferenceComponentArn"]
    return arn


def ic_statuses(sm: Any, name: str, count: int) -> list[str]:
    return [
        sm.describe_inference_component(InferenceComponentName=name)["InferenceComponentStatus"]
        for _ in range(count)
    ]


def client_error(call: Any, **params: Any) -> tuple[str, str]:
    """(code, message) of the ClientError the call raises."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as exc:
        call(**params)
    return error_code(exc), str(exc.value.response["Error"]["Message"])


@pytest.fixture
def sagemaker_ic(moto: MotoServer) -> Any:
    """A SageMaker client, Model llm-v1 and the InService IC endpoint ic-ep."""
    sm = client(moto, "sagemaker")
    for model in ("llm-v1", "llm-v2"):
        sm.create_model(
            ModelName=model,
            ExecutionRoleArn=ROLE_ARN,
            PrimaryContainer={"Image": "img", "ModelDataUrl": f"s3://models/{model}.tar.gz"},
        )
    ic_endpoint(sm, "ic-ep")
    return sm


def test_ic_endpoint_config_has_no_model_needs_a_role_and_keeps_scaling(
    sagemaker_ic: Any,
) -> None:
    sm = sagemaker_ic
    config = sm.describe_endpoint_config(EndpointConfigName="ic-ep-cfg")
    assert config["ExecutionRoleArn"] == ROLE_ARN
    assert config["ProductionVariants"] == [IC_VARIANT]
    variant = sm.describe_endpoint(EndpointName="ic-ep")["ProductionVariants"][0]
    assert variant["ManagedInstanceScaling"] == IC_VARIANT["ManagedInstanceScaling"]
    assert variant["RoutingConfig"] == IC_VARIANT["RoutingConfig"]

    code, message = client_error(
        sm.create_endpoint_config, EndpointConfigName="no-role", ProductionVariants=[IC_VARIANT]
    )
    assert code == "ValidationException" and message.startswith("ExecutionRoleArn is required")
    with_model = {**IC_VARIANT, "ModelName": "llm-v1"}
    code, message = client_error(
        sm.create_endpoint_config,
        EndpointConfigName="model-and-managed",
        ProductionVariants=[with_model],
        ExecutionRoleArn=ROLE_ARN,
    )
    assert code == "ValidationException"
    assert "ManagedInstanceScaling is supported only for inference component" in message
    code, message = client_error(
        sm.create_endpoint_config,
        EndpointConfigName="unknown-model",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "nope", "InstanceType": "ml.m5.large"}
        ],
    )
    assert code == "ValidationException" and message.startswith('Could not find model "arn:')


def test_inference_component_creating_then_in_service(moto: MotoServer, sagemaker_ic: Any) -> None:
    sm = sagemaker_ic
    arn = create_ic(sm, "llm-v1", Tags=[{"Key": "team", "Value": "a"}])
    assert arn.endswith(":inference-component/llm-v1")
    listed = sm.list_inference_components()["InferenceComponents"]  # does not advance
    assert [(c["InferenceComponentName"], c["InferenceComponentStatus"]) for c in listed] == [
        ("llm-v1", "Creating")
    ]
    first = sm.describe_inference_component(InferenceComponentName="llm-v1")
    assert first["RuntimeConfig"] == {"DesiredCopyCount": 2, "CurrentCopyCount": 0}
    assert ic_statuses(sm, "llm-v1", CREATING_DESCRIBES) == ["Creating"] * (
        CREATING_DESCRIBES - 1
    ) + ["InService"]
    described = sm.describe_inference_component(InferenceComponentName="llm-v1")
    assert described["InferenceComponentStatus"] == "InService"
    assert described["InferenceComponentArn"] == arn
    assert described["EndpointName"] == "ic-ep"
    assert described["EndpointArn"].endswith(":endpoint/ic-ep")
    assert described["VariantName"] == "AllTraffic"
    assert described["Specification"] == spec()
    assert described["RuntimeConfig"] == {"DesiredCopyCount": 2, "CurrentCopyCount": 2}
    assert described["LastModifiedTime"] >= described["CreationTime"]
    assert "FailureReason" not in described
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "a"}]

    sm.update_inference_component(InferenceComponentName="llm-v1", RuntimeConfig={"CopyCount": 3})
    assert ic_statuses(sm, "llm-v1", CREATING_DESCRIBES + 1) == ["Updating"] * (
        CREATING_DESCRIBES
    ) + ["InService"]
    runtime = sm.describe_inference_component(InferenceComponentName="llm-v1")["RuntimeConfig"]
    assert runtime == {"DesiredCopyCount": 3, "CurrentCopyCount": 3}
    assert [
        (c["operation"], c["mutating"])
        for c in moto.calls()
        if "InferenceComponent" in str(c["operation"])
    ] == [
        ("CreateInferenceComponent", True),
        ("ListInferenceComponents", False),
    ] + [("DescribeInferenceComponent", False)] * (CREATING_DESCRIBES + 2) + [
        ("UpdateInferenceComponent", True)
    ] + [("DescribeInferenceComponent", False)] * (CREATING_DESCRIBES + 2)


def test_failure_tag_fails_a_create_and_rolls_an_update_back(sagemaker_ic: Any) -> None:
    sm = sagemaker_ic
    reason = {"Key": "mlops-test:failure-reason", "Value": "CUDA out of memory"}
    create_ic(sm, "bad", Tags=[FAIL_TAG, reason])
    assert ic_statuses(sm, "bad", CREATING_DESCRIBES + 1)[-1] == "Failed"
    described = sm.describe_inference_component(InferenceComponentName="bad")
    assert described["FailureReason"] == "CUDA out of memory"
    assert described["RuntimeConfig"]["CurrentCopyCount"] == 0
    code, message = client_error(
        sm.update_inference_component, InferenceComponentName="bad", RuntimeConfig={"CopyCount": 1}
    )
    assert code == "ValidationException" and "Cannot update failed" in message

    arn = create_ic(sm, "good")
    ic_statuses(sm, "good", CREATING_DESCRIBES + 1)
    sm.add_tags(ResourceArn=arn, Tags=[FAIL_TAG])  # the default reason this time
    sm.update_inference_component(
        InferenceComponentName="good", Specification=spec("llm-v2", memory=2048)
    )
    assert ic_statuses(sm, "good", CREATING_DESCRIBES + 1) == ["Updating"] * (
        CREATING_DESCRIBES
    ) + ["InService"]
    rolled_back = sm.describe_inference_component(InferenceComponentName="good")
    assert rolled_back["Specification"] == spec()  # SageMaker rolls a failed update back
    assert "mlops-test" in rolled_back["FailureReason"]


def test_create_inference_component_is_validated_like_sagemaker(
    moto: MotoServer, sagemaker_ic: Any
) -> None:
    from botocore.config import Config

    sm = sagemaker_ic
    create_ic(sm, "taken")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"InferenceComponentName": "bad_name"}, "Member must satisfy regular expression"),
        ({"InferenceComponentName": "-dash"}, "Member must satisfy regular expression"),
        ({"InferenceComponentName": "a" * 64}, "Member must have length less than or equal to 63"),
        ({"InferenceComponentName": "taken"}, "Cannot create already existing inference comp"),
        ({"EndpointName": "nowhere"}, 'Could not find endpoint "arn:aws:sagemaker:'),
        ({"Specification": spec("no-such-model")}, 'Could not find model "arn:aws:sagemaker:'),
        ({"VariantName": "Other"}, 'Could not find variant "Other" on endpoint'),
        ({"RuntimeConfig": {"CopyCount": 0}}, "CopyCount must be an integer larger than 0"),
    ]
    for override, expected in cases:
        params = {
            "InferenceComponentName": "fresh",
            "EndpointName": "ic-ep",
            "VariantName": "AllTraffic",
            "Specification": spec(),
            "RuntimeConfig": {"CopyCount": 1},
            **override,
        }
        code, message = client_error(sm.create_inference_component, **params)
        assert code == "ValidationException", (override, message)
        assert expected in message, (override, message)

    # MinMemoryRequiredInMb >= 128 is required (boto3 checks that itself; so does the server).
    unchecked = boto3_client_without_validation(moto, Config)
    no_memory = {"ModelName": "llm-v1", "ComputeResourceRequirements": COMPUTE}
    code, message = client_error(
        unchecked.create_inference_component,
        InferenceComponentName="fresh",
        EndpointName="ic-ep",
        Specification=no_memory,
        RuntimeConfig={"CopyCount": 1},
    )
    assert code == "ValidationException"
    assert "computeResourceRequirements.minMemoryRequiredInMb" in message
    assert "must not be null" in message
    code, message = client_error(
        unchecked.create_inference_component,
        InferenceComponentName="fresh",
        EndpointName="ic-ep",
        Specification=spec(memory=64),
        RuntimeConfig={"CopyCount": 1},
    )
    assert code == "ValidationException"
    assert "Value '64' at 'specification.computeResourceRequirements.minMemory" in message

    # An endpoint still Creating, and an endpoint whose variant hosts a Model.
    sm.create_endpoint(EndpointName="young", EndpointConfigName="ic-ep-cfg")
    code, message = client_error(
        sm.create_inference_component,
        InferenceComponentName="fresh",
        EndpointName="young",
        Specification=spec(),
        RuntimeConfig={"CopyCount": 1},
    )
    assert code == "ValidationException" and "is Creating, not InService" in message
    sm.create_model(ModelName="mme", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "i"})
    make_config(sm, "model-cfg", "ml.g5.xlarge")  # its variant hosts Model "mme"
    sm.create_endpoint(EndpointName="model-ep", EndpointConfigName="model-cfg")
    statuses(sm, "model-ep", CREATING_DESCRIBES + 1)
    code, message = client_error(
        sm.create_inference_component,
        InferenceComponentName="fresh",
        EndpointName="model-ep",
        Specification=spec(),
        RuntimeConfig={"CopyCount": 1},
    )
    assert code == "ValidationException" and "Inference components are not supported" in message
    assert [
        c["InferenceComponentName"] for c in sm.list_inference_components()["InferenceComponents"]
    ] == ["taken"]


def boto3_client_without_validation(server: MotoServer, config_class: Any) -> Any:
    import boto3

    env = server.env()
    return boto3.client(
        "sagemaker",
        endpoint_url=server.endpoint,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=config_class(retries={"max_attempts": 1}, parameter_validation=False),
    )


def test_update_and_delete_need_a_settled_component_and_endpoint_deletion_waits(
    sagemaker_ic: Any,
) -> None:
    sm = sagemaker_ic
    create_ic(sm, "llm-v1")
    for call, params in (
        (sm.update_inference_component, {"RuntimeConfig": {"CopyCount": 1}}),
        (sm.delete_inference_component, {}),
    ):
        code, message = client_error(call, InferenceComponentName="llm-v1", **params)
        assert code == "ValidationException" and "in-progress inference component" in message
    ic_statuses(sm, "llm-v1", CREATING_DESCRIBES + 1)
    code, message = client_error(sm.update_inference_component, InferenceComponentName="llm-v1")
    assert code == "ValidationException" and "needs a Specification or a RuntimeConfig" in message

    code, message = client_error(sm.delete_endpoint, EndpointName="ic-ep")
    assert code == "ValidationException"
    assert "inference components attached: llm-v1" in message
    sm.delete_inference_component(InferenceComponentName="llm-v1")
    # Deleting for N describes: listed as such, not deleted twice, still holding the endpoint
    [listed] = sm.list_inference_components()["InferenceComponents"]
    assert listed["InferenceComponentStatus"] == "Deleting"
    code, message = client_error(sm.delete_inference_component, InferenceComponentName="llm-v1")
    assert code == "ValidationException" and "in-progress inference component" in message
    code, message = client_error(sm.delete_endpoint, EndpointName="ic-ep")
    assert "inference components attached: llm-v1" in message
    assert ic_statuses(sm, "llm-v1", CREATING_DESCRIBES) == ["Deleting"] * CREATING_DESCRIBES
    for call in (sm.describe_inference_component, sm.delete_inference_component):
        code, message = client_error(call, InferenceComponentName="llm-v1")
        assert code == "ValidationException"
        assert message.startswith('Could not find inference component "arn:aws:sagemaker:')
    assert sm.list_inference_components()["InferenceComponents"] == []
    sm.delete_endpoint(EndpointName="ic-ep")
    assert sm.list_endpoints()["Endpoints"] == []


def test_list_inference_components_filters_sorts_and_pages(sagemaker_ic: Any) -> None:
    sm = sagemaker_ic
    ic_endpoint(sm, "ic-ep-2")
    for name, endpoint in (("alpha-v1", "ic-ep"), ("beta-v1", "ic-ep"), ("alpha-v2", "ic-ep-2")):
        create_ic(sm, name, endpoint=endpoint)
    ic_statuses(sm, "alpha-v1", CREATING_DESCRIBES + 1)  # only alpha-v1 reaches InService

    def names(**filters: Any) -> list[str]:
        found = sm.list_inference_components(**filters)["InferenceComponents"]
        return [c["InferenceComponentName"] for c in found]

    assert names() == ["alpha-v2", "beta-v1", "alpha-v1"]  # newest first by default
    assert names(EndpointNameEquals="ic-ep", SortBy="Name", SortOrder="Ascending") == [
        "alpha-v1",
        "beta-v1",
    ]
    assert names(StatusEquals="InService") == ["alpha-v1"]
    assert names(NameContains="alpha", SortBy="Name", SortOrder="Ascending") == [
        "alpha-v1",
        "alpha-v2",
    ]
    assert names(VariantNameEquals="Other") == []
    first = sm.list_inference_components(MaxResults=2, SortBy="Name", SortOrder="Ascending")
    second = sm.list_inference_components(
        MaxResults=2, SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"]
    )
    assert [c["InferenceComponentName"] for c in first["InferenceComponents"]] == [
        "alpha-v1",
        "alpha-v2",
    ]
    assert [c["InferenceComponentName"] for c in second["InferenceComponents"]] == ["beta-v1"]
    assert "NextToken" not in second
    paginator = sm.get_paginator("list_inference_components")
    pages = paginator.paginate(PaginationConfig={"PageSize": 1})
    assert sorted(c["InferenceComponentName"] for p in pages for c in p["InferenceComponents"]) == [
        "alpha-v1",
        "alpha-v2",
        "beta-v1",
    ]


def test_autoscaling_of_an_inference_component(moto: MotoServer, sagemaker_ic: Any) -> None:
    sm = sagemaker_ic
    scaling = client(moto, "application-autoscaling")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "inference-component/llm-v1",
        "ScalableDimension": COPY_DIMENSION,
    }
    policy = {
        **target,
        "PolicyName": "llm-v1-invocations",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 4.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"
            },
        },
    }
    code, message = client_error(
        scaling.register_scalable_target, MinCapacity=1, MaxCapacity=4, **target
    )
    assert (code, message) == (
        "ValidationException",
        'Inference component "llm-v1" does not exist.',
    )
    create_ic(sm, "llm-v1")
    code, message = client_error(scaling.put_scaling_policy, **policy)
    assert code == "ObjectNotFoundException"
    assert message.startswith("No scalable target registered for service namespace: sagemaker")
    code, _ = client_error(scaling.register_scalable_target, **target)  # no Min/Max
    assert code == "ValidationException"

    scaling.register_scalable_target(MinCapacity=1, MaxCapacity=4, **target)
    scaling.put_scaling_policy(**policy)
    wrong_metric = {
        **policy,
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 4.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
    }
    code, message = client_error(scaling.put_scaling_policy, **wrong_metric)
    assert code == "ValidationException" and "SageMakerVariantInvocationsPerInstance" in message
    targets = scaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[target["ResourceId"]]
    )["ScalableTargets"]
    assert [(t["ScalableDimension"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        (COPY_DIMENSION, 1, 4)
    ]
    policies = scaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=target["ResourceId"]
    )["ScalingPolicies"]
    assert [p["TargetTrackingScalingPolicyConfiguration"] for p in policies] == [
        policy["TargetTrackingScalingPolicyConfiguration"]
    ]

    # Deleting the component removes its target and policy with it, once it is gone.
    ic_statuses(sm, "llm-v1", CREATING_DESCRIBES + 1)
    sm.delete_inference_component(InferenceComponentName="llm-v1")
    ic_statuses(sm, "llm-v1", CREATING_DESCRIBES)  # Deleting ...
    client_error(sm.describe_inference_component, InferenceComponentName="llm-v1")  # ... gone
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    code, _ = client_error(scaling.deregister_scalable_target, **target)
    assert code == "ObjectNotFoundException"
    code, _ = client_error(scaling.delete_scaling_policy, PolicyName="llm-v1-invocations", **target)
    assert code == "ObjectNotFoundException"
    mutating = [op for op in moto.mutating_calls() if op.endswith(("Target", "Policy"))]
    assert mutating == [
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "RegisterScalableTarget",
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "PutScalingPolicy",
        "DeregisterScalableTarget",
        "DeleteScalingPolicy",
    ]


def test_deregistering_a_target_deletes_its_policies(moto: MotoServer, sagemaker_ic: Any) -> None:
    scaling = client(moto, "application-autoscaling")
    create_ic(sagemaker_ic, "llm-v1")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "inference-component/llm-v1",
        "ScalableDimension": COPY_DIMENSION,
    }
    scaling.register_scalable_target(MinCapacity=1, MaxCapacity=2, **target)
    scaling.put_scaling_policy(
        PolicyName="p",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 1.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"
            },
        },
        **target,
    )
    scaling.deregister_scalable_target(**target)
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
