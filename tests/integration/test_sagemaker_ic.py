"""`mlops deploy --target sagemaker-ic`: the control plane on a real moto server (with the
inference-component patches of tests/servers/moto_launcher.py), the runtime on mme-local's
inference-components mode in front of its own real tritonserver, which reads the components from
the same moto server, exactly as SageMaker's runtime would (boto3 reaches it through
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, with no other change). Every mutating AWS request is counted
by the moto server's call log."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_cli.aws import client
from tests.cli import error_line, run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/mlops-ic"
BUCKET = "ic-models"
ENDPOINT = "ic-a"


@pytest.fixture
def env(aws: Any, mme_local: Any) -> Any:
    """moto for the control plane and S3, mme-local (reading moto) for the runtime."""
    client("s3").create_bucket(Bucket=BUCKET)
    return aws


def endpoint_file(tmp_path: Path, name: str = ENDPOINT, **overrides: Any) -> Path:
    """An endpoint file; an override of None drops the key."""
    document: dict[str, Any] = {
        "name": name,
        "s3_prefix": f"s3://{BUCKET}/{name}/",
        "role_arn": ROLE,
        "instance_type": "ml.m5.2xlarge",
        "inference_components": {
            "managed_scaling": {"min": 1, "max": 2},
            "copies": 1,
            "autoscaling": {"min": 1, "max": 3, "target_invocations_per_copy": 5},
        },
        "alarms": {"enabled": False},
        **overrides,
    }
    document = {key: value for key, value in document.items() if value is not None}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def register(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fixture: str = "ticker",
    *,
    labels: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    name: str | None = None,
) -> int:
    folder = tmp_path / "src" / f"{fixture}-{time.monotonic_ns()}"
    shutil.copytree(FIXTURES / "models" / fixture, folder)
    spec = yaml.safe_load((folder / "mlops.yaml").read_text())
    spec["description"] = f"registered as {folder.name}"  # each call a new version
    if name:
        spec["name"] = name
    if labels:
        spec["labels"] = labels
    if resources:
        spec["resources"] = {**spec.get("resources", {}), **resources}
    (folder / "mlops.yaml").write_text(yaml.safe_dump(spec))
    version: int = run(capsys, "register", str(folder))["version"]
    return version


def deploy(capsys: pytest.CaptureFixture[str], ref: str, endpoint: Path, *extra: str) -> Any:
    args = ["deploy", ref, "--target", "sagemaker-ic", "--endpoint", str(endpoint)]
    return run(capsys, *args, "--drain", "0", *extra)


def component(name: str) -> dict[str, Any]:
    found: dict[str, Any] = client("sagemaker").describe_inference_component(
        InferenceComponentName=name
    )
    return found


def component_names() -> set[str]:
    listed = client("sagemaker").list_inference_components(EndpointNameEquals=ENDPOINT)
    return {c["InferenceComponentName"] for c in listed["InferenceComponents"]}


def aliases(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    return {a["alias"]: a["version"] for a in run(capsys, "alias", "list", "ticker")}


def mutating(env: Any, since: int) -> list[str]:
    return [c["operation"] for c in env.calls()[since:] if c["mutating"]]


def test_deploy_creates_the_endpoint_component_and_its_scaling_then_changes_nothing(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path)
    register(capsys, tmp_path)
    before = len(env.calls())
    dry = deploy(capsys, "ticker@1", endpoint, "--dry-run")
    ops = [(a["op"], a["model"]) for a in dry["actions"]]
    for wanted in [
        ("create", "endpoint"),
        ("publish", "ticker"),
        ("create", "sagemaker-model"),
        ("create", "inference-component"),
        ("put", "autoscaling"),
        ("warm", "ticker"),
    ]:
        assert wanted in ops
    assert mutating(env, before) == []  # --dry-run only describes

    deploy(capsys, "ticker@1", endpoint)
    sm = client("sagemaker")
    described = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert "ModelName" not in variant and config["ExecutionRoleArn"] == ROLE
    assert variant["ManagedInstanceScaling"]["MaxInstanceCount"] == 2
    found = component("ticker-v1")
    assert found["InferenceComponentStatus"] == "InService"
    assert found["EndpointName"] == ENDPOINT
    compute = found["Specification"]["ComputeResourceRequirements"]
    # 64 MB declared, 128 MB reserved: the least SageMaker takes
    assert compute["MinMemoryRequiredInMb"] == 128 and compute["NumberOfCpuCoresRequired"] == 1
    model = sm.describe_model(ModelName=found["Specification"]["ModelName"])
    container = model["PrimaryContainer"]
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/{ENDPOINT}/ticker-v1.tar.gz"
    assert container["Environment"]["SAGEMAKER_TRITON_INFERENCE_TYPE"] == "generate_stream"
    scaling = client("application-autoscaling")
    [target] = scaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=["inference-component/ticker-v1"]
    )["ScalableTargets"]
    assert target["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    [policy] = scaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId="inference-component/ticker-v1"
    )["ScalingPolicies"]
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == 5.0
    assert (
        configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerInferenceComponentInvocationsPerCopy"
    )

    before = len(env.calls())
    again = deploy(capsys, "ticker@1", endpoint)
    assert again["changes"] is False
    assert mutating(env, before) == []  # an identical deploy only describes

    [status] = run(capsys, "status")["deployments"]
    assert status["state"] == "READY" and "ticker-v1" in status["note"]


def test_invoke_streams_token_by_token_and_a_model_that_does_not_stream_is_refused(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path)
    register(capsys, tmp_path)
    deploy(capsys, "ticker@1", endpoint)
    streamed = run(capsys, "invoke", "ticker", "--stream", "--input", '{"count": 5}')
    chunks = streamed["chunks"]
    tokens = [c["outputs"]["token"] for c in chunks]
    tokens = [t[0] if isinstance(t, list) else t for t in tokens]
    assert [t.split("@")[0] for t in tokens] == ["0", "1", "2", "3", "4"]
    local = run(capsys, "local", "status", "--mme")
    assert {"name": f"{ENDPOINT}/ticker-v1", "state": "LOADED"}.items() <= next(
        m for m in local["models"] if m["name"].endswith("ticker-v1")
    ).items()

    run(capsys, "register", str(FIXTURES / "models" / "answer"))
    deploy(capsys, "answer@1", endpoint)
    answered = run(capsys, "invoke", "answer", "--input", '{"x": [1, 2]}')
    assert answered["outputs"]["y"] == [1.0, 1.0]  # the fixture's weights file says 1
    before = len(env.calls())
    line = error_line(capsys, "invoke", "answer", "--stream", "--input", '{"x": [1]}', code=1)
    assert "does not declare streaming" in line
    assert env.calls()[before:] == []


def test_boto3_response_stream_arrives_event_by_event(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path)
    deploy(capsys, "ticker@1", endpoint_file(tmp_path))
    runtime = client("sagemaker-runtime")
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT,
        InferenceComponentName="ticker-v1",
        Body=json.dumps({"count": 8}).encode(),
        ContentType="application/json",
    )
    arrivals = []
    payload = b""
    for event in response["Body"]:
        if "PayloadPart" in event:
            arrivals.append(time.monotonic())
            payload += event["PayloadPart"]["Bytes"]
    tokens = [line for line in payload.decode().splitlines() if line.startswith("data:")]
    assert len(tokens) == 8
    assert len(arrivals) >= 8  # one event per token at least: not one buffered answer
    # 8 tokens 50 ms apart: the first event arrives well before the last (>= 0.35 s of sleeps)
    assert arrivals[-1] - arrivals[0] >= 0.3


def test_cut_over_moves_the_alias_once_v2_is_in_service_then_deletes_v1(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path)
    register(capsys, tmp_path)
    deploy(capsys, "ticker@1", endpoint, "--alias", "production")
    register(capsys, tmp_path)
    before = len(env.calls())
    deploy(capsys, "ticker@2", endpoint, "--alias", "production")
    calls = env.calls()[before:]
    operations = [c["operation"] for c in calls]
    created = operations.index("CreateInferenceComponent")
    deleted = operations.index("DeleteInferenceComponent")
    in_service = [i for i, op in enumerate(operations) if op == "DescribeInferenceComponent"]
    assert created < deleted and any(created < i < deleted for i in in_service)
    assert aliases(capsys)["production"] == 2
    assert component_names() == {"ticker-v2"}
    scaling = client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert {t["ResourceId"] for t in scaling} == {"inference-component/ticker-v2"}
    streamed = run(capsys, "invoke", "ticker@production", "--stream", "--input", '{"count": 2}')
    assert streamed["version"] == 2


def test_a_failed_component_is_rolled_back_with_its_reason_and_the_alias_stays(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path)
    register(capsys, tmp_path)
    deploy(capsys, "ticker@1", endpoint, "--alias", "production")
    register(
        capsys,
        tmp_path,
        labels={"mlops-test/fail-update": "true", "mlops-test/failure-reason": "CUDA OOM"},
    )
    args = ["deploy", "ticker@2", "--target", "sagemaker-ic", "--endpoint", str(endpoint)]
    line = error_line(capsys, *args, "--alias", "production", "--drain", "0", code=1)
    assert "ticker-v2 failed" in line and "CUDA OOM" in line
    assert aliases(capsys)["production"] == 1
    assert component_names() == {"ticker-v1"}
    models = client("sagemaker").list_models()["Models"]
    assert len(models) == 1  # v2's Model was deleted with its component
    keys = {o["Key"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"{ENDPOINT}/ticker-v1.tar.gz"}
    assert run(capsys, "invoke", "ticker", "--input", '{"count": 1}')["version"] == 1


# -- bad input: one clear line, non-zero exit, nothing changed -------------------------------


def test_a_reservation_larger_than_the_instance_is_refused_before_any_call(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, resources={"memory_mb": 40000})
    register(capsys, tmp_path, resources={"cpus": 16})
    before = len(env.calls())
    args = ["--target", "sagemaker-ic", "--endpoint", str(endpoint_file(tmp_path))]
    line = error_line(capsys, "deploy", "ticker@1", *args, code=2)
    assert "40000 MB" in line and "ml.m5.2xlarge has 32768 MB of memory" in line
    line = error_line(capsys, "deploy", "ticker@2", *args, code=2)
    assert "reserves 16 of CPU cores per copy and ml.m5.2xlarge has 8" in line
    assert env.calls()[before:] == []


def test_a_gpu_reservation_counts_accelerators_against_the_instance(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, resources={"gpu": {"count": 4}})
    register(capsys, tmp_path, resources={"gpu": {"count": 8}})
    endpoint = endpoint_file(tmp_path, instance_type="ml.g5.12xlarge")
    dry = deploy(capsys, "ticker@1", endpoint, "--dry-run")
    [create] = [a for a in dry["actions"] if a["model"] == "inference-component"]
    assert "4 gpu per copy" in create["detail"]
    args = ["deploy", "ticker@2", "--target", "sagemaker-ic", "--endpoint", str(endpoint)]
    line = error_line(capsys, *args, code=2)
    assert "reserves 8 of accelerators per copy and ml.g5.12xlarge has 4" in line


def test_an_endpoint_that_is_failed_before_the_deploy_is_refused_with_its_reason(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = client("sagemaker")
    sm.create_endpoint_config(
        EndpointConfigName="broken-config",
        ExecutionRoleArn=ROLE,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "InstanceType": "ml.m5.2xlarge",
                "InitialInstanceCount": 1,
            }
        ],
        Tags=[
            {"Key": "mlops-test:fail-update", "Value": "true"},
            {"Key": "mlops-test:failure-reason", "Value": "no capacity"},
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="broken-config")
    deadline = time.monotonic() + 10
    while sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] != "Failed":
        assert time.monotonic() < deadline
    register(capsys, tmp_path)
    before = len(env.calls())
    args = ["deploy", "ticker@1", "--target", "sagemaker-ic"]
    line = error_line(capsys, *args, "--endpoint", str(endpoint_file(tmp_path)), code=1)
    assert f"endpoint {ENDPOINT} is Failed: no capacity" in line
    assert mutating(env, before) == []


def test_endpoint_file_mistakes_are_refused_before_any_call(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path)
    before = len(env.calls())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"autoscaling": {"min": 1, "max": 2}}, "use inference_components.managed_scaling"),
        ({"role_arn": None}, "the sagemaker-ic target needs an execution role"),
        (
            {"inference_components": {"managed_scaling": {"min": 3, "max": 2}}},
            "min 3 is above max 2",
        ),
        ({"inference_components": {"copies": 0}}, "inference_components.copies"),
    ]
    for overrides, words in cases:
        endpoint = endpoint_file(tmp_path, **overrides)
        args = ["deploy", "ticker@1", "--target", "sagemaker-ic", "--endpoint", str(endpoint)]
        line = error_line(capsys, *args, code=2)
        assert words in line, line
    assert env.calls()[before:] == []


def test_the_iam_policy_printed_covers_every_call_the_deploys_made(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fnmatch

    endpoint = endpoint_file(tmp_path)
    policy = run(
        capsys, "deploy", "ticker", "--target", "sagemaker-ic", "--endpoint", str(endpoint),
        "--print-iam-policy",
    )  # fmt: skip
    register(capsys, tmp_path)
    register(capsys, tmp_path)
    before = len(env.calls())
    deploy(capsys, "ticker@1", endpoint)
    deploy(capsys, "ticker@2", endpoint)
    run(capsys, "status")
    run(capsys, "undeploy", "ticker", "--target", "sagemaker-ic", "--endpoint", str(endpoint))
    allowed = [
        action
        for statement in policy["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    ]
    services = {"SageMaker": "sagemaker", "AnyScaleFrontendService": "application-autoscaling"}
    s3_actions = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "DELETE": "s3:DeleteObject"}
    checked = set()
    for call in env.calls()[before:]:
        if call["service"] in services:
            action = f"{services[call['service']]}:{call['operation']}"
        elif not call["service"] and call["path"].startswith(f"/{BUCKET}"):
            listing = call["path"].rstrip("/") == f"/{BUCKET}"
            action = "s3:ListBucket" if listing else s3_actions.get(call["method"], "s3:PutObject")
        else:
            continue
        checked.add(action)
        assert any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed), call
    assert {"sagemaker:CreateInferenceComponent", "sagemaker:DeleteInferenceComponent"} <= checked
    assert "application-autoscaling:RegisterScalableTarget" in checked


def test_a_name_over_sagemakers_limit_is_shortened_with_a_digest_and_still_answers(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    name = "customer-0042.sentiment_classifier.multilingual-large-2026-11-final"[:64]
    register(capsys, tmp_path, "answer", name=name)
    deploy(capsys, f"{name}@1", endpoint_file(tmp_path))
    [component_name] = component_names()
    assert len(component_name) <= 63 and component_name != f"{name}-v1"
    assert re.fullmatch(
        r"customer-0042-sentiment-classifier-[a-z0-9-]+-[0-9a-f]{8}", component_name
    )
    assert component(component_name)["InferenceComponentStatus"] == "InService"
    answered = run(capsys, "invoke", name, "--input", '{"x": [1, 2]}')
    assert answered["version"] == 1 and len(answered["outputs"]["y"]) == 2


def test_autoscaling_dropped_from_the_endpoint_file_is_deregistered(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path)
    deploy(capsys, "ticker@1", endpoint_file(tmp_path))
    scaling = client("application-autoscaling")
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    fixed = endpoint_file(tmp_path, inference_components={"copies": 1})
    dry = deploy(capsys, "ticker@1", fixed, "--dry-run")
    assert ("delete", "autoscaling") in [(a["op"], a["model"]) for a in dry["actions"]]
    deploy(capsys, "ticker@1", fixed)
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert deploy(capsys, "ticker@1", fixed)["changes"] is False


def test_a_failed_endpoint_update_keeps_the_endpoint_and_its_components(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path)
    deploy(capsys, "ticker@1", endpoint_file(tmp_path))
    failing = endpoint_file(
        tmp_path,
        instance_count=2,
        tags={"mlops-test:fail-update": "true", "mlops-test:failure-reason": "no capacity"},
    )
    args = ["deploy", "ticker@1", "--target", "sagemaker-ic", "--endpoint", str(failing)]
    line = error_line(capsys, *args, "--drain", "0", code=1)
    assert "no capacity" in line
    # a Failed endpoint of components is not deleted to roll back: its components stay
    assert client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert component_names() == {"ticker-v1"}
