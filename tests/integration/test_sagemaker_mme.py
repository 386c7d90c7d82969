"""`mlops deploy --target sagemaker-mme` against a real moto server (with the SageMaker patches of
tests/servers/moto_launcher.py: GPU instance types, UpdateEndpoint, a Creating/Updating phase and
failure injection by tag). Every mutating AWS request is counted by the server's call log."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_cli.aws import client
from tests.cli import error_line, run
from tests.servers.mme_models import make_model

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/mlops-mme"
BUCKET = "mme-models"


@pytest.fixture
def env(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    client("s3").create_bucket(Bucket=BUCKET)
    return aws


def endpoint_file(tmp_path: Path, name: str = "mme-a", **overrides: Any) -> Path:
    """An endpoint file; an override of None drops the key."""
    document: dict[str, Any] = {
        "name": name,
        "s3_prefix": f"s3://{BUCKET}/endpoints/{name}/",
        "role_arn": ROLE,
        "instance_type": "ml.g5.xlarge",
        "autoscaling": {"min": 1, "max": 4, "target_invocations_per_instance": 50},
        "alarms": {"latency_ms": 250},
        **overrides,
    }
    document = {key: value for key, value in document.items() if value is not None}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def register(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, version: int) -> None:
    folder = make_model(tmp_path / "src", name, version=version, scale=version)
    assert run(capsys, "register", str(folder))["version"] == version


def deploy(capsys: pytest.CaptureFixture[str], ref: str, endpoint: Path, *extra: str) -> Any:
    args = ["deploy", ref, "--target", "sagemaker-mme", "--endpoint", str(endpoint)]
    return run(capsys, *args, "--drain", "0", *extra)


def tarballs(prefix: str = "endpoints/mme-a/") -> set[str]:
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def test_full_deploy_creates_the_endpoint_scaling_and_alarms_then_changes_nothing(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path)
    for name in ("alpha", "beta"):
        register(capsys, tmp_path, name, 1)
    before = len(env.calls())
    dry = deploy(capsys, "alpha@1", endpoint, "--dry-run")
    ops = [(a["op"], a["model"]) for a in dry["actions"]]
    assert ("create", "endpoint") in ops and ("publish", "alpha") in ops
    assert [c for c in env.calls()[before:] if c["mutating"]] == []  # --dry-run only describes

    deploy(capsys, "alpha@1", endpoint)
    deploy(capsys, "beta@1", endpoint)

    sm = client("sagemaker")
    described = sm.describe_endpoint(EndpointName="mme-a")
    assert described["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g5.xlarge", 1)
    container = sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/endpoints/mme-a/"
    assert tarballs() == {"alpha-v1.tar.gz", "beta-v1.tar.gz"}

    scaling = client("application-autoscaling")
    [target] = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/mme-a/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    [policy] = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 50.0
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )
    alarms = client("cloudwatch").describe_alarms(AlarmNamePrefix="mme-a-")["MetricAlarms"]
    assert {(a["MetricName"], a["Threshold"]) for a in alarms} == {
        ("Invocation5XXErrors", 1.0),
        ("ModelLatency", 250_000.0),
    }

    before = len(env.calls())
    again = deploy(capsys, "alpha@1", endpoint)
    assert again["changes"] is False and again["applied"] is False
    new_calls = env.calls()[before:]
    assert new_calls, "the re-deploy described the endpoint"
    assert [c["operation"] for c in new_calls if c["mutating"]] == []

    status = run(capsys, "status")["deployments"]
    assert {(r["model"], r["state"]) for r in status} == {("alpha", "READY"), ("beta", "READY")}


def test_new_version_is_published_and_the_old_tarball_retired(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, alarms={"enabled": False})
    register(capsys, tmp_path, "alpha", 1)
    register(capsys, tmp_path, "alpha", 2)
    deploy(capsys, "alpha@1", endpoint)
    before = len(env.calls())
    result = deploy(capsys, "alpha@2", endpoint)
    assert result["retired"] == [1]
    assert result["detail"]["target_model"] == "alpha-v2.tar.gz"
    assert result["detail"]["where"] == "mme-a"
    assert tarballs() == {"alpha-v2.tar.gz"}
    services = {c["service"] for c in env.calls()[before:] if c["mutating"]}
    assert services == {""}, "only S3 changed: the endpoint itself was left alone"


def test_endpoint_update_and_rollback_on_an_injected_failure(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, "alpha", 1)
    register(capsys, tmp_path, "alpha", 2)
    deploy(capsys, "alpha@1", endpoint_file(tmp_path))
    sm = client("sagemaker")
    first_config = sm.describe_endpoint(EndpointName="mme-a")["EndpointConfigName"]

    # An update: two instances -> a new EndpointConfig, UpdateEndpoint, wait for InService.
    deploy(capsys, "alpha@1", endpoint_file(tmp_path, instance_count=2))
    updated = sm.describe_endpoint(EndpointName="mme-a")
    assert updated["EndpointStatus"] == "InService"
    assert updated["EndpointConfigName"] != first_config
    assert updated["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert "UpdateEndpoint" in env.mutating_calls()

    # An update whose config SageMaker fails: rolled back to the config that served before.
    failing = endpoint_file(
        tmp_path,
        instance_count=3,
        tags={"mlops-test:fail-update": "true", "mlops-test:failure-reason": "CUDA OOM in test"},
    )
    line = error_line(
        capsys,
        "deploy",
        "alpha@2",
        "--target",
        "sagemaker-mme",
        "--endpoint",
        str(failing),
        code=1,
    )
    assert "CUDA OOM in test" in line and f"rolled back to {updated['EndpointConfigName']}" in line
    after = sm.describe_endpoint(EndpointName="mme-a")
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == updated["EndpointConfigName"]
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert configs == {first_config, updated["EndpointConfigName"]}  # the failed one is gone
    assert tarballs() == {"alpha-v1.tar.gz"}  # v2's tarball was removed again
    versions = [r["version"] for r in run(capsys, "status")["deployments"]]
    assert versions == [1]


def test_print_iam_policy_is_scoped_to_the_endpoint(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.deploy.sagemaker import iam_policy_for

    policy = iam_policy_for(endpoint_file(tmp_path))
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["PassExecutionRole"]["Resource"] == ROLE
    assert statements["ModelTarballs"]["Resource"] == f"arn:aws:s3:::{BUCKET}/endpoints/mme-a/*"
    assert "sagemaker:UpdateEndpoint" in statements["MultiModelEndpoint"]["Action"]
    assert all(r != "*" for r in statements["MultiModelEndpoint"]["Resource"])
    assert {"Autoscaling", "Alarms"} <= set(statements)
    before = len(env.calls())
    args = ["deploy", "alpha", "--target", "sagemaker-mme", "--endpoint"]
    printed = run(capsys, *args, str(endpoint_file(tmp_path)), "--print-iam-policy")
    assert printed == policy
    assert env.calls()[before:] == []


# -- bad input: one clear line, non-zero exit, nothing changed -------------------------------


def deploy_error(capsys: pytest.CaptureFixture[str], endpoint: Path, code: int) -> str:
    args = ["deploy", "alpha@1", "--target", "sagemaker-mme", "--endpoint", str(endpoint)]
    return error_line(capsys, *args, code=code)


def test_invalid_instance_type_is_refused_before_any_call(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, "alpha", 1)
    before = len(env.calls())
    line = deploy_error(capsys, endpoint_file(tmp_path, instance_type="ml.gg5.xlarge"), 2)
    assert "instance_type" in line and "did you mean 'g5'" in line
    line = deploy_error(capsys, endpoint_file(tmp_path, instance_type="g5.xlarge"), 2)
    assert "mme-a.yaml: instance_type" in line
    assert env.calls()[before:] == []
    assert tarballs() == set()


def test_missing_role_names_the_key_and_changes_nothing(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, "alpha", 1)
    path = endpoint_file(tmp_path)
    document = yaml.safe_load(path.read_text())
    del document["role_arn"]
    path.write_text(yaml.safe_dump(document))
    before = len(env.calls())
    line = deploy_error(capsys, path, 2)
    assert "role_arn" in line and "execution role" in line
    assert [c for c in env.calls()[before:] if c["mutating"]] == []
    assert tarballs() == set()


def test_an_endpoint_in_failed_state_is_reported_and_left_alone(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, "alpha", 1)
    sm = client("sagemaker")
    sm.create_model(
        ModelName="broken-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "img:1", "Mode": "MultiModel", "ModelDataUrl": "s3://x/y/"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="broken-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "broken-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g5.xlarge",
            }
        ],
        Tags=[
            {"Key": "mlops-test:fail-update", "Value": "true"},
            {"Key": "mlops-test:failure-reason", "Value": "image pull failed"},
        ],
    )
    sm.create_endpoint(EndpointName="mme-a", EndpointConfigName="broken-config")
    while sm.describe_endpoint(EndpointName="mme-a")["EndpointStatus"] == "Creating":
        pass
    before = len(env.calls())
    line = deploy_error(capsys, endpoint_file(tmp_path), 1)
    assert "endpoint mme-a is Failed: image pull failed" in line
    assert [c for c in env.calls()[before:] if c["mutating"]] == []
    assert tarballs() == set()
    assert sm.describe_endpoint(EndpointName="mme-a")["EndpointConfigName"] == "broken-config"


def test_sagemaker_rejecting_the_config_rolls_back_what_was_created(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, "alpha", 1)
    # Well formed and of a known family, but not a size SageMaker (moto) accepts.
    line = deploy_error(capsys, endpoint_file(tmp_path, instance_type="ml.g5.huge"), 1)
    assert "CreateEndpointConfig" in line or "create_endpoint_config" in line
    sm = client("sagemaker")
    assert sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_endpoints()["Endpoints"] == []
    assert tarballs() == set()


# -- issue 15: the image by runtime and device, deployed means answering, metrics -------------


def answer_model(tmp_path: Path, *, gpu: bool = False) -> Path:
    from tests.conftest import FIXTURES

    folder = tmp_path / ("answer-gpu" if gpu else "answer")
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    if gpu:
        spec = folder / "mlops.yaml"
        spec.write_text(spec.read_text() + "  gpu: {count: 1, kind: nvidia-a10g}\n")
    return folder


def serving_image(name: str = "mme-a") -> dict[str, Any]:
    sm = client("sagemaker")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    )
    [variant] = config["ProductionVariants"]
    container: dict[str, Any] = sm.describe_model(ModelName=variant["ModelName"])[
        "PrimaryContainer"
    ]
    return {**container, "InstanceType": variant["InstanceType"]}


def test_the_image_follows_the_runtime_and_the_deploy_sends_the_warmup_first(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(answer_model(tmp_path)))  # triton-python, CPU
    endpoint = endpoint_file(tmp_path, "tri-cpu", instance_type=None, model_cache=False)
    plan = deploy(capsys, "answer@1", endpoint, "--dry-run")
    assert ("warm", "answer") in [(a["op"], a["model"]) for a in plan["actions"]]
    deploy(capsys, "answer@1", endpoint)
    container = serving_image("tri-cpu")
    assert container["Image"].endswith("/sagemaker-tritonserver:24.09-py3-cpu")
    assert container["InstanceType"] == "ml.m5.xlarge"
    assert container["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}
    paths = [c["path"] for c in env.calls() if c["method"] == "POST"]
    invoked = paths.index("/endpoints/tri-cpu/invocations")  # the warmup, with its TargetModel
    assert invoked > paths.index("/"), "the warmup came after the endpoint was created"

    register(capsys, tmp_path, "alpha", 1)  # sagemaker-mms on the g5 endpoint: MXNet's GPU build
    deploy(capsys, "alpha@1", endpoint_file(tmp_path))
    assert serving_image()["Image"].endswith("/mxnet-inference:1.9.0-gpu-py38")


TRITON_GPU = "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"


@pytest.mark.parametrize(
    ("gpu", "overrides", "words"),
    [
        (False, {"image_uri": TRITON_GPU, "instance_type": "ml.m5.xlarge"}, "built for GPU"),
        (True, {"image_uri": TRITON_GPU + "-cpu", "instance_type": "ml.g5.xlarge"}, "for CPU"),
        (True, {"instance_type": "ml.m5.xlarge"}, "asks for a GPU and ml.m5.xlarge has none"),
    ],
    ids=["cpu-model-gpu-image", "gpu-model-cpu-image", "gpu-model-cpu-instance"],
)
def test_a_pair_that_cannot_serve_is_refused_at_plan_time_before_any_call(
    env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    gpu: bool,
    overrides: dict[str, Any],
    words: str,
) -> None:
    run(capsys, "register", str(answer_model(tmp_path, gpu=gpu)))
    before = len(env.calls())
    args = ["deploy", "answer@1", "--target", "sagemaker-mme"]
    line = error_line(
        capsys, *args, "--endpoint", str(endpoint_file(tmp_path, **overrides)), code=2
    )
    assert words in line
    assert env.calls()[before:] == []  # refused before any AWS call
    assert tarballs() == set()


def test_a_model_of_another_container_is_refused_on_a_serving_endpoint(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(capsys, tmp_path, "alpha", 1)
    deploy(capsys, "alpha@1", endpoint_file(tmp_path))  # the endpoint runs multi-model-server
    run(capsys, "register", str(answer_model(tmp_path, gpu=True)))
    before = env.mutating_calls()
    args = ["deploy", "answer@1", "--target", "sagemaker-mme"]
    line = error_line(capsys, *args, "--endpoint", str(endpoint_file(tmp_path)), code=2)
    assert "endpoint mme-a runs multi-model-server" in line and "runs in NVIDIA Triton" in line
    assert env.mutating_calls() == before
    assert serving_image()["Image"].endswith("/mxnet-inference:1.9.0-gpu-py38")


def test_status_shows_what_cloudwatch_reports_for_the_endpoint_and_each_model(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datetime

    register(capsys, tmp_path, "alpha", 1)
    deploy(capsys, "alpha@1", endpoint_file(tmp_path, alarms={"enabled": False}))
    cloudwatch = client("cloudwatch")
    dims = [
        {"Name": "EndpointName", "Value": "mme-a"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    now = datetime.datetime.now(datetime.UTC)
    cloudwatch.put_metric_data(
        Namespace="/aws/sagemaker/Endpoints",
        MetricData=[
            {"MetricName": "ModelCacheHit", "Dimensions": dims, "Value": 0.75, "Timestamp": now},
            {"MetricName": "ModelLoadingTime", "Dimensions": dims, "Value": 2e6, "Timestamp": now},
        ],
    )
    target = [*dims, {"Name": "TargetModel", "Value": "alpha-v1.tar.gz"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": target, "Value": 12, "Timestamp": now},
            {
                "MetricName": "Invocation5XXErrors",
                "Dimensions": target,
                "Value": 2,
                "Timestamp": now,
            },
        ],
    )
    [row] = run(capsys, "status")["deployments"]
    assert row["state"] == "READY" and (row["requests"], row["failures"]) == (12, 2)
    assert row["detail"]["endpoint"]["model_cache_hit"] == 0.75
    assert row["detail"]["endpoint"]["model_loading_ms"] == 2000.0
    assert row["detail"]["endpoint"]["model_loading_wait_ms"] is None  # not reported: absent
