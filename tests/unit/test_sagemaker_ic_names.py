"""Names, reservations and the IAM policy of the sagemaker-ic target: pure logic, no AWS."""

from __future__ import annotations

import re

import pytest

from mlops_cli.deploy.sagemaker_endpoint import EndpointFileError, EndpointSpec
from mlops_cli.deploy.sagemaker_iam import iam_policy
from mlops_cli.deploy.sagemaker_ic import ReservationError, check_reservation
from mlops_cli.deploy.sagemaker_ic_documents import component_name, fit_name

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$")
ROLE = "arn:aws:iam::123456789012:role/ic"


def test_a_short_name_is_model_and_version() -> None:
    assert component_name("tiny-lm", 3) == "tiny-lm-v3"
    assert component_name("tiny--lm", 3) == "tiny--lm-v3"  # SageMaker takes hyphens in a row


def test_models_whose_names_differ_only_where_sagemaker_refuses_a_character_stay_apart() -> None:
    # Model names may hold "." and "_" (SageMaker's may not): each changed name ends with a
    # digest of the original, so one model's deploy never updates another's component.
    models = ("my-model", "my_model", "my.model", "my__model")
    names = [component_name(model, 1) for model in models]
    assert names[0] == "my-model-v1"
    assert len(set(names)) == len(names)
    assert re.fullmatch(r"my-model-v1-[0-9a-f]{8}", names[1])
    assert all(SAGEMAKER_NAME.match(name) and len(name) <= 63 for name in names)
    assert component_name("my_model", 1) == names[1]  # deterministic


def test_a_long_name_is_cut_to_63_with_a_digest_that_keeps_two_names_apart() -> None:
    model = "a-very-long-model-name-for-a-customer-with-a-long-name-and-more"
    first, second = component_name(model, 1), component_name(model, 2)
    assert len(first) <= 63 and len(second) <= 63
    assert first != second
    assert SAGEMAKER_NAME.match(first) and SAGEMAKER_NAME.match(second)
    assert component_name(model, 1) == first  # deterministic
    assert len(fit_name("x" * 300)) == 63


@pytest.mark.parametrize("wanted", ["--a--", "_", "a" * 62 + "-b", "Ünïcode-model"])
def test_every_fitted_name_is_a_valid_sagemaker_name(wanted: str) -> None:
    name = fit_name(wanted)
    assert SAGEMAKER_NAME.match(name) and len(name) <= 63


def test_a_reservation_is_checked_on_every_dimension() -> None:
    fits = {"NumberOfCpuCoresRequired": 8.0, "MinMemoryRequiredInMb": 32768}
    check_reservation("m v1", fits, "ml.m5.2xlarge")
    check_reservation("m v1", {**fits, "NumberOfCpuCoresRequired": 99.0}, "ml.unknown.xlarge")
    for key, value, words in [
        ("NumberOfCpuCoresRequired", 8.5, "8.5 of CPU cores"),
        ("MinMemoryRequiredInMb", 32769, "32769 MB of memory"),
        ("NumberOfAcceleratorDevicesRequired", 1.0, "1 of accelerators"),
    ]:
        with pytest.raises(ReservationError, match=words):
            check_reservation("m v1", {**fits, key: value}, "ml.m5.2xlarge")


def test_the_endpoint_file_takes_component_settings() -> None:
    spec = EndpointSpec.from_dict(
        {
            "name": "ic",
            "s3_prefix": "s3://bucket/ic/",
            "role_arn": ROLE,
            "inference_components": {
                "managed_scaling": {"min": 1, "max": 4},
                "copies": 2,
                "cpus": 0.5,
                "autoscaling": {"min": 1, "max": 8, "target_invocations_per_copy": 3},
            },
        }
    )
    settings = spec.components
    assert (settings.managed_min, settings.managed_max, settings.copies) == (1, 4, 2)
    assert settings.cpus == 0.5 and settings.autoscaling is not None
    assert settings.autoscaling.target_invocations_per_copy == 3.0
    with pytest.raises(EndpointFileError, match=r"inference_components\.autoscaling\.min"):
        EndpointSpec.from_dict(
            {
                "name": "ic",
                "s3_prefix": "s3://bucket/ic/",
                "inference_components": {"autoscaling": {"min": 5, "max": 2}},
            }
        )


def test_the_policy_of_components_allows_their_calls_and_the_mme_policy_does_not() -> None:
    spec = EndpointSpec.from_dict({"name": "ic", "s3_prefix": "s3://bkt/ic/", "role_arn": ROLE})
    with_components = iam_policy(spec, components=True)
    statements = {s["Sid"]: s for s in with_components["Statement"]}
    assert "sagemaker:CreateInferenceComponent" in statements["InferenceComponents"]["Action"]
    assert "application-autoscaling:DeregisterScalableTarget" in statements["Autoscaling"]["Action"]
    plain = {s["Sid"] for s in iam_policy(spec)["Statement"]}
    assert "InferenceComponents" not in plain and "Autoscaling" not in plain
