"""mme-local's inference-components mode, the pure parts: what a component runs
(:mod:`mlops_cli.mme.component_spec`), the Triton image's start checks, and the control-plane
cache of :class:`~mlops_cli.mme.components.ComponentTable` fed with plain documents and a
hand-moved clock (the real control plane is exercised in tests/integration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_cli.mme.agent import Agent
from mlops_cli.mme.component_spec import (
    ComponentSpec,
    ContainerStartError,
    component_spec,
    triton_entry,
)
from mlops_cli.mme.components import HEADER_NOT_ALLOWED, HEADER_REQUIRED, ComponentTable
from mlops_cli.mme.runtime_errors import AgentError

TRITON = "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3-cpu"
MMS = "763104351884.dkr.ecr.us-east-1.amazonaws.com/mxnet-inference:1.9.0-cpu-py38"


def spec(**env: str) -> ComponentSpec:
    return ComponentSpec("ep", "ic", "m", TRITON, "triton", "s3://b/m.tar.gz", tuple(env.items()))


def repository(tmp_path: Path, *folders: str) -> Path:
    root = tmp_path / "repository"
    root.mkdir(parents=True)
    for name in folders:
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    return root


def test_triton_entry_is_the_named_folder_or_the_only_one(tmp_path: Path) -> None:
    repo = repository(tmp_path, "a", "b")
    assert triton_entry(spec(SAGEMAKER_TRITON_DEFAULT_MODEL_NAME="b"), repo) == repo / "b"
    single = repository(tmp_path / "single", "only")
    assert triton_entry(spec(), single) == single / "only"


@pytest.mark.parametrize(
    ("env", "folders", "words"),
    [
        ({"SAGEMAKER_TRITON_INFERENCE_TYPE": "stream"}, ["a"], "Invalid SAGEMAKER_TRITON_INFERENCE_TYPE 'stream'"),
        ({"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "c"}, ["a"], "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME c does not exist"),
        ({"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": ".."}, ["a"], "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME .. does not exist"),
        ({"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": "a/1"}, ["a"], "a/1 does not exist"),
        ({}, [], "No model found in model repository"),
        ({}, ["a", "b"], "More than 1 model directory found in model repository"),
    ],
)  # fmt: skip
def test_triton_entry_refuses_as_the_image_does(
    tmp_path: Path, env: dict[str, str], folders: list[str], words: str
) -> None:
    with pytest.raises(ContainerStartError) as caught:
        triton_entry(spec(**env), repository(tmp_path, *folders))
    assert words in caught.value.message and caught.value.code == "ModelError"


def test_a_repository_with_its_config_at_the_root_is_refused_first(tmp_path: Path) -> None:
    repo = repository(tmp_path, "a")
    (repo / "config.pbtxt").write_text("")
    with pytest.raises(ContainerStartError, match="Incorrect directory structure"):
        triton_entry(spec(SAGEMAKER_TRITON_INFERENCE_TYPE="bad"), repo)


def document(name: str = "ic", endpoint: str = "ep", **extra: Any) -> dict[str, Any]:
    return {
        "InferenceComponentName": name,
        "EndpointName": endpoint,
        "InferenceComponentStatus": "InService",
        "Specification": {"ModelName": "m"},
        **extra,
    }


def model(image: str = TRITON, **env: str) -> dict[str, Any]:
    return {
        "PrimaryContainer": {
            "Image": image,
            "ModelDataUrl": "s3://b/p/m.tar.gz",
            "Environment": env,
        }
    }


def test_component_spec_merges_the_components_own_container_over_the_model() -> None:
    own = {"Container": {"Environment": {"SAGEMAKER_TRITON_INFERENCE_TYPE": "generate"}}}
    found = component_spec(
        "ep",
        document(Specification={"ModelName": "m", **own}),
        model(SAGEMAKER_TRITON_INFERENCE_TYPE="infer", OTHER="1"),
    )
    assert found.container == "triton" and found.inference_type == "generate"
    assert found.env == {"SAGEMAKER_TRITON_INFERENCE_TYPE": "generate", "OTHER": "1"}
    assert component_spec("ep", document(), model(MMS)).container == "mms"
    assert component_spec("ep", document(), model(MMS)).inference_type == "infer"
    assert found.digest != component_spec("ep", document(), model()).digest


def test_component_spec_refuses_what_mme_local_cannot_run() -> None:
    with pytest.raises(AgentError, match="runs only") as caught:
        component_spec("ep", document(), model("123.dkr.ecr.x.amazonaws.com/custom:1"))
    assert caught.value.status == 424
    with pytest.raises(AgentError, match="Could not find model m"):
        component_spec("ep", document(), None)


class Plane:
    """The control plane's documents, and the describes asked of it."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {
            "ep": {"EndpointStatus": "InService", "EndpointConfigName": "ic-config"},
            "plain": {"EndpointStatus": "InService", "EndpointConfigName": "plain-config"},
        }
        self.configs = {
            "ic-config": {"ProductionVariants": [{"VariantName": "AllTraffic"}]},
            "plain-config": {"ProductionVariants": [{"ModelName": "m"}]},
        }
        self.components: dict[str, dict[str, Any]] = {"ic": document()}
        self.models = {"m": model()}
        self.asked: list[str] = []

    def endpoint(self, name: str) -> dict[str, Any] | None:
        self.asked.append(f"endpoint {name}")
        return self.endpoints.get(name)

    def endpoint_config(self, name: str) -> dict[str, Any] | None:
        self.asked.append(f"config {name}")
        return self.configs.get(name)

    def inference_component(self, name: str) -> dict[str, Any] | None:
        self.asked.append(f"component {name}")
        return self.components.get(name)

    def model(self, name: str) -> dict[str, Any] | None:
        return self.models.get(name)


@pytest.fixture
def table(tmp_path: Path) -> tuple[ComponentTable, Plane, list[float]]:
    def no_container(kind: str) -> Any:
        raise AssertionError("no container is started here")

    plane, now = Plane(), [100.0]
    agent = Agent(tmp_path, no_container)
    return ComponentTable(agent, plane, clock=lambda: now[0]), plane, now


def test_the_control_plane_is_asked_at_most_once_an_interval(
    table: tuple[ComponentTable, Plane, list[float]],
) -> None:
    components, plane, now = table
    first = components.resolve("ep", "ic")
    assert components.cached("ep", "ic") is first
    components.resolve("ep", "ic")
    assert plane.asked == ["endpoint ep", "config ic-config", "component ic"]
    now[0] += 1.0
    assert components.cached("ep", "ic") is None  # stale: resolved again, in a thread
    assert components.resolve("ep", "ic") is first  # same spec: same state
    assert plane.asked[3:] == ["endpoint ep", "component ic"]  # a config is asked once
    del plane.components["ic"]
    now[0] += 1.0
    with pytest.raises(AgentError, match=r"Inference Component ic of account .* not found"):
        components.resolve("ep", "ic")
    assert components.describe() == {}


def test_a_changed_model_is_a_new_state_and_an_update_keeps_the_old_one(
    table: tuple[ComponentTable, Plane, list[float]],
) -> None:
    components, plane, now = table
    first = components.resolve("ep", "ic")
    plane.models["m2"] = model(SAGEMAKER_TRITON_INFERENCE_TYPE="generate")
    plane.components["ic"] = document(
        InferenceComponentStatus="Updating", Specification={"ModelName": "m2"}
    )
    now[0] += 1.0
    assert components.resolve("ep", "ic") is first  # served by the running copy meanwhile
    plane.components["ic"] = document(Specification={"ModelName": "m2"})
    now[0] += 1.0
    second = components.resolve("ep", "ic")
    assert second is not first and second.spec.inference_type == "generate"
    assert second.ep.name != first.ep.name  # its own container name


def test_what_is_refused_before_anything_loads(
    table: tuple[ComponentTable, Plane, list[float]],
) -> None:
    components, plane, _ = table
    plane.components["other"] = document("other", endpoint="elsewhere")
    plane.components["new"] = document("new", InferenceComponentStatus="Creating")
    plane.components["failed"] = document(
        "failed", InferenceComponentStatus="Failed", FailureReason="no capacity"
    )
    with pytest.raises(AgentError, match=r"other of account .* not found for endpoint ep"):
        components.resolve("ep", "other")
    with pytest.raises(AgentError, match="status is Creating"):
        components.resolve("ep", "new")
    with pytest.raises(AgentError, match=r"status is Failed \(no capacity\)"):
        components.resolve("ep", "failed")
    with pytest.raises(AgentError, match=r"Endpoint gone of account .* not found"):
        components.resolve("gone", "ic")
    with pytest.raises(AgentError) as caught:
        components.resolve("plain", "ic")
    assert caught.value.message == HEADER_NOT_ALLOWED
    assert components.missing_header("ep").message == HEADER_REQUIRED
    assert "not found" in components.missing_header("plain").message
    plane.endpoints["ep"]["EndpointStatus"] = "Creating"
    assert "not found" in ComponentTable(components.agent, plane).missing_header("ep").message
