"""What the sagemaker-ic target refuses while planning, before any AWS call: pure logic (the AWS
client factory is replaced by one that fails the test if it is ever asked for a client)."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_cli.deploy.base import Desired
from mlops_cli.deploy.sagemaker_endpoint import EndpointFileError, EndpointSpec
from mlops_cli.deploy.sagemaker_ic import SageMakerICTarget
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.spec.modelspec import load_spec
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/ic"


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("an AWS client was asked for before the refusal")

    monkeypatch.setattr("mlops_cli.aws.client", refuse)


def desired(device: str) -> Desired:
    spec = load_spec(FIXTURES / "models" / "ticker")
    manifest = PackageManifest(name="ticker", files=())
    return Desired("ticker", 1, spec, manifest, None, "", device, 64.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_an_endpoint_file_without_an_instance_type_is_refused_whatever_the_device(
    device: str,
) -> None:
    # One instance type hosts every component: a default chosen by each model's device would
    # update the shared endpoint to another type whenever a model of the other kind is deployed.
    spec = EndpointSpec.from_dict(
        {"name": "ic", "s3_prefix": "s3://bkt/ic/", "role_arn": ROLE, "region": "us-east-1"}
    )
    with pytest.raises(EndpointFileError) as raised:
        SageMakerICTarget(spec).plan(desired(device), [])
    assert "instance_type" in raised.value.message
    assert "one instance type" in raised.value.message
    assert raised.value.hint and "instance_type:" in raised.value.hint
