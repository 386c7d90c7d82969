"""The one AWS boundary (``mlops_cli.aws``): the ``s3://`` parser, the client factory's table
(endpoint, region, signing, retries, timeouts, pool per use) as every caller gets it, and the
one translation of S3 failures. Clients are only built here, never called."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli import aws
from mlops_cli.aws import S3Location, translate_s3
from mlops_cli.errors import MlopsError, NotFoundError, UsageError

pytestmark = pytest.mark.unit

MLOPS_CLI = Path(__file__).resolve().parents[2] / "mlops_cli"


# -- the parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://models", "models", ""),
        ("s3://models/", "models", ""),
        ("s3://models/triton", "models", "triton"),
        ("s3://models/team-a/triton/", "models", "team-a/triton/"),
        ("s3://my.bucket-1/a/b.tar.gz", "my.bucket-1", "a/b.tar.gz"),
    ],
)
def test_good_uris_parse(uri: str, bucket: str, key: str) -> None:
    assert S3Location.parse(uri) == S3Location(bucket, key)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("models/triton", "is not an S3 URI"),
        ("s3:/models/triton", "is not an S3 URI"),
        ("file:///tmp/x", "is not an S3 URI"),
        ("s3://", "names no bucket"),
        ("s3:///triton", "names no bucket"),
        ("s3://My_Bucket/x", "is not a valid bucket name"),
        ("s3://ab/x", "is not a valid bucket name"),
        ("s3://-models/x", "is not a valid bucket name"),
        ("s3://mo..dels/x", "is not a valid bucket name"),
        ("s3://models//x", "has an invalid key"),
    ],
)
def test_bad_uris_are_one_clear_line(uri: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        S3Location.parse(uri)
    error = caught.value
    assert says in error.message and "\n" not in error.message
    assert "s3://bucket/" in (error.hint or "") or "bucket names" in (error.hint or "")


def test_an_object_uri_must_name_an_object() -> None:
    with pytest.raises(UsageError, match="names no object"):
        S3Location.parse("s3://models/", require_key=True)
    assert S3Location.parse("s3://models/m-v1.tar.gz", require_key=True).key == "m-v1.tar.gz"


def test_prefix_and_child() -> None:
    prefix = S3Location.parse("s3://models/triton").as_prefix()
    assert prefix == S3Location("models", "triton/")
    assert prefix.child("tiny-v1/config.pbtxt").uri == "s3://models/triton/tiny-v1/config.pbtxt"
    assert S3Location("models").as_prefix().child("a").uri == "s3://models/a"


def test_the_endpoint_file_and_the_fleet_file_use_the_parser(tmp_path: Path) -> None:
    from mlops_cli.deploy.fleet_file import FleetFileError, load_fleet
    from mlops_cli.deploy.sagemaker_endpoint import load_endpoint

    endpoint = tmp_path / "endpoint.yaml"
    endpoint.write_text("name: ep\ns3_prefix: s3://bucket\n")
    spec = load_endpoint(endpoint)
    assert (spec.s3_prefix, spec.bucket, spec.key_prefix) == ("s3://bucket/", "bucket", "")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "name: f\nrepository: s3://Bad_Bucket/triton\n"
        "servers:\n  - {name: a, url: 'http://127.0.0.1:1', memory_mb: 10}\n"
    )
    with pytest.raises(FleetFileError) as caught:
        load_fleet(fleet)
    assert "fleet.yaml: repository:" in caught.value.message
    assert "not a valid bucket name" in caught.value.message


# -- the client factory -----------------------------------------------------------------------

SERVICES = ("s3", "sagemaker", "sagemaker-runtime", "application-autoscaling", "cloudwatch")
# The standard per-service variable is named after the service id, not the client's name.
ENDPOINT_VARIABLES = {
    "s3": "AWS_ENDPOINT_URL_S3",
    "sagemaker": "AWS_ENDPOINT_URL_SAGEMAKER",
    "sagemaker-runtime": "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
    "application-autoscaling": "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING",
    "cloudwatch": "AWS_ENDPOINT_URL_CLOUDWATCH",
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A standard AWS environment, with one endpoint per service and no config files."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for port, service in enumerate(SERVICES, start=10):
        monkeypatch.setenv(ENDPOINT_VARIABLES[service], f"http://127.0.0.1:{port}")
    aws.reset_clients()
    yield
    aws.reset_clients()


def endpoint_of(service: str) -> str:
    return f"http://127.0.0.1:{10 + SERVICES.index(service)}"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("use", [None, "control", "runtime", "transfer", "measure"])
def test_every_client_honours_the_service_endpoint_and_region(
    aws_env: None, service: str, use: Any
) -> None:
    built = aws.client(service, use=use)
    assert built.meta.endpoint_url == endpoint_of(service)
    assert built.meta.region_name == "eu-west-1"
    assert aws.client(service, use=use, region="ap-south-1").meta.region_name == "ap-south-1"


def test_the_general_endpoint_applies_without_a_service_one(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:9"


def test_aws_region_comes_before_aws_default_region(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws.client("sagemaker").meta.region_name == "eu-west-1"
    monkeypatch.delenv("AWS_REGION")
    aws.reset_clients()
    assert aws.client("sagemaker").meta.region_name == "us-west-2"
    assert aws.default_region() == "us-west-2"


@pytest.mark.parametrize("use", ["control", "runtime", "transfer", "measure"])
def test_each_use_gets_its_row_of_the_table(aws_env: None, use: Any) -> None:
    row = aws.USES[use]
    config = aws.client("sagemaker-runtime", use=use).meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": row.attempts}
    assert (config.read_timeout, config.max_pool_connections) == (row.read_timeout, row.max_pool)
    assert config.connect_timeout == min(row.connect_timeout, row.read_timeout)


def test_the_callers_clients_come_from_the_factory(aws_env: None) -> None:
    """The clients the SageMaker targets, the runtime, the perf target and S3 build."""
    from botocore import UNSIGNED

    from mlops_cli.aws import S3Prefix
    from mlops_cli.deploy.sagemaker_control import ControlPlane
    from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec, region_of
    from mlops_cli.deploy.sagemaker_runtime import runtime_client
    from mlops_cli.perf.targets.base import TargetSpec
    from mlops_cli.perf.targets.sagemaker import SageMakerTarget
    from mlops_cli.stores.s3 import S3Store

    spec = EndpointSpec(name="ep", s3_prefix="s3://bucket/models/", region="ap-south-1")
    control = ControlPlane(spec, region=region_of(spec), image="", instance_type="")
    for service in ("sagemaker", "application-autoscaling", "cloudwatch"):
        built = control._client(service)
        assert (built.meta.endpoint_url, built.meta.region_name) == (
            endpoint_of(service),
            "ap-south-1",
        )
    assert region_of(EndpointSpec(name="ep", s3_prefix="s3://b/")) == "eu-west-1"

    signed = runtime_client(region="ap-south-1")
    assert signed.meta.endpoint_url == endpoint_of("sagemaker-runtime")
    assert signed.meta.region_name == "ap-south-1"
    local = runtime_client(runtime_url="http://127.0.0.1:7777", region="us-east-1")
    assert local.meta.endpoint_url == "http://127.0.0.1:7777"
    assert local.meta.config.signature_version is UNSIGNED  # mme-local checks no signature

    target = SageMakerTarget(
        TargetSpec(protocol="sagemaker", url="sagemaker://ep", timeout_s=7, max_connections=3)
    )
    asyncio.run(target.start())
    assert target.client.meta.endpoint_url == endpoint_of("sagemaker-runtime")
    # One attempt in all: a retry would hide a failure from the measurement.
    assert target.client.meta.config.retries["total_max_attempts"] == 1
    assert (
        target.client.meta.config.read_timeout,
        target.client.meta.config.max_pool_connections,
    ) == (7, 3)

    store = S3Store.from_uri("s3://bucket/team")
    assert store._client.meta.endpoint_url == endpoint_of("s3")
    assert S3Prefix("s3://bucket/x")._client().meta.endpoint_url == endpoint_of("s3")


def test_importing_the_boundary_imports_no_botocore() -> None:
    code = (
        "import sys, mlops_cli.aws, mlops_cli.deploy.fleet, mlops_cli.deploy.sagemaker;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_outside_the_boundary_builds_clients_or_parses_s3_uris() -> None:
    offenders = []
    for path in MLOPS_CLI.rglob("*.py"):
        if path.parent.name == "aws":
            continue
        text = path.read_text()
        for needle in ("create_client(", 'removeprefix("s3://")', '[len("s3://") :]'):
            if needle in text:
                offenders.append(f"{path.relative_to(MLOPS_CLI)}: {needle}")
    assert offenders == []


# -- the translation ---------------------------------------------------------------------------


def client_error(code: str, message: str = "", operation: str = "PutObject") -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


WHERE = S3Location("models", "triton/tiny-v1/config.pbtxt")


def test_a_missing_bucket_says_how_to_create_it() -> None:
    error = translate_s3(client_error("NoSuchBucket", "gone"), what="uploading", location=WHERE)
    assert isinstance(error, NotFoundError)
    assert (
        error.message
        == "uploading: bucket models does not exist (s3://models/triton/tiny-v1/config.pbtxt)"
    )
    assert error.hint == "create it first: aws s3 mb s3://models"


@pytest.mark.parametrize("code", ["AccessDenied", "403"])
def test_refused_access_is_a_credentials_error(code: str) -> None:
    error = translate_s3(client_error(code, "Access Denied"), what="uploading", location=WHERE)
    assert isinstance(error, aws.CredentialsError)
    assert (
        "AWS refused the credentials for s3://models/triton/tiny-v1/config.pbtxt" in error.message
    )
    assert error.hint and "s3://models/triton/tiny-v1/" in error.hint


def test_other_failures_name_the_place_and_pass_mlops_errors_through() -> None:
    error = translate_s3(
        client_error("SlowDown", "reduce your rate"), what="listing", location=WHERE
    )
    assert type(error) is MlopsError
    assert (
        error.message
        == "listing (s3://models/triton/tiny-v1/config.pbtxt): SlowDown: reduce your rate"
    )
    same = MlopsError("already ours")
    assert translate_s3(same, what="x", location=WHERE) is same
