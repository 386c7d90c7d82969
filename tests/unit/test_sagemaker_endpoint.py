"""The endpoint file: schema errors name the file and key path; defaults; the IAM policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.deploy.sagemaker_endpoint import EndpointFileError, load_endpoint
from mlops_cli.deploy.sagemaker_iam import iam_policy

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoint.yaml"
    path.write_text(text)
    return path


def test_defaults_and_names(tmp_path: Path) -> None:
    spec = load_endpoint(write(tmp_path, "name: ep\ns3_prefix: s3://bucket/models\n"))
    assert spec.s3_prefix == "s3://bucket/models/"
    assert (spec.bucket, spec.key_prefix) == ("bucket", "models/")
    assert spec.tarball_uri("m", 3) == "s3://bucket/models/m-v3.tar.gz"
    assert spec.chosen_instance_type(gpu=True) == "ml.g5.xlarge"
    assert spec.chosen_instance_type(gpu=False) == "ml.m5.xlarge"
    assert (spec.instance_count, spec.variant, spec.autoscaling) == (1, "AllTraffic", None)
    assert spec.local.backend == "mms" and spec.alarms.enabled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: ep\ns3_prefix: s3://bkt/p\nrole: x\n", "endpoint.yaml: role: unknown key"),
        ("name: ep\ns3_prefix: s3://bkt/p\nlocal: {budget: 3}\n", "local.budget: unknown key"),
        ("name: ep\ns3_prefix: /tmp/x\n", "endpoint.yaml: s3_prefix"),
        ("name: ep\ns3_prefix: s3://bkt/p\ninstance_type: ml.zz9.xlarge\n", "instance_type"),
        ("name: ep\ns3_prefix: s3://bkt/p\nautoscaling: {min: 3, max: 2}\n", "autoscaling.min"),
        ("name: ep\ns3_prefix: s3://bkt/p\nrole_arn: admin\n", "role_arn"),
        ("name: ep\ns3_prefix: s3://bkt/p\nlocal: {backend: docker}\n", "local.backend"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(EndpointFileError) as caught:
        load_endpoint(write(tmp_path, text))
    assert expected in str(caught.value)


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(EndpointFileError) as caught:
        load_endpoint(write(tmp_path, "name: ep\ns3_prefix: s3://bkt/p\nrole_ar: x\n"))
    assert "did you mean 'role_arn'" in (caught.value.hint or "")


def test_iam_policy_without_autoscaling_or_alarms_is_smaller(tmp_path: Path) -> None:
    spec = load_endpoint(
        write(
            tmp_path,
            "name: ep\ns3_prefix: s3://bkt/p\nregion: eu-west-1\n"
            "role_arn: arn:aws:iam::111122223333:role/r\nalarms: {enabled: false}\n",
        )
    )
    policy = iam_policy(spec)
    sids = [s["Sid"] for s in policy["Statement"]]
    assert sids == [
        "MultiModelEndpoint",
        "PassExecutionRole",
        "ModelTarballs",
        "ListModelTarballs",
        "EndpointMetrics",
    ]
    resources = policy["Statement"][0]["Resource"]
    assert "arn:aws:sagemaker:eu-west-1:111122223333:endpoint/ep" in resources
