"""The DeployTarget contract (``mlops_cli.deploy.base``), one suite over every target, each on a
real server: ``local`` (the session's tritonserver), ``triton`` (one more tritonserver and a fleet
file), ``mme-local`` (the mme-local server with a real multi-model-server, S3 on moto) and
``sagemaker-mme`` (the patched moto server, whose call log counts every mutating AWS request).

What every target promises: an identical second deploy changes nothing; a failed apply leaves
nothing behind (no record, nothing loaded or published); retire is idempotent; status reports
drift both ways (recorded but not served, served but not recorded); a capability the target does
not declare is refused with NotSupportedError. Each case drives the engine and the target as the
api does, and checks what the servers, the bucket and the registry hold.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.config import resolve_settings
from mlops_cli.deploy.base import DeployTarget, InvokeRequest
from mlops_cli.deploy.engine import deploy, desired_state, resolve_version
from mlops_cli.deploy.kinds import open_target, rebuild_target
from mlops_cli.errors import MlopsError, NotSupportedError
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import Registry
from mlops_cli.stores import open_store
from tests.cli import run
from tests.conftest import FIXTURES, triton_request
from tests.integration.test_mme_local import mme_server  # noqa: F401  (a fixture)
from tests.servers.mme_models import make_model

pytestmark = pytest.mark.integration

BUCKET = "contract-models"
ROLE = "arn:aws:iam::123456789012:role/mlops-mme"
TARGETS = ("local", "triton", "mme-local", "sagemaker-mme")


@dataclass
class Harness:
    """One target under test and how to look at what it serves, behind the registry's back."""

    kind: str
    target: DeployTarget[Any, Any]
    register: Callable[[int], None]  # registers version N of model "m"
    served: Callable[[int], bool]  # is m vN served (loaded, or published) right now?
    unserve: Callable[[int], None]  # stop serving m vN without the registry knowing
    failing: Callable[[], DeployTarget[Any, Any]]  # the target, set up so that apply fails
    mutations: Callable[[], int | None]  # mutating calls so far (None: not counted)


def registry() -> Registry:
    return open_registry(os.environ["MLOPS_REGISTRY"])


def roll(target: DeployTarget[Any, Any], version: int, alias: str | None = "production") -> Any:
    """Deploy m@version on ``target`` as ``mlops deploy`` does (no drain); without ``alias``
    beside what is served (``--no-switch``)."""
    reg = registry()
    wanted = resolve_version(reg, f"m@{version}")
    store = os.environ["MLOPS_STORE"]
    desired = desired_state(wanted, lambda root: open_store(root or store), target=target)
    return deploy(reg, target, desired, alias=alias, drain_seconds=0)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    return tmp_path


def triton_ready(url: str) -> set[str]:
    index = triton_request(url, "/v2/repository/index", {}) or []
    return {e["name"] for e in index if e.get("state") == "READY"}  # type: ignore[union-attr]


def triton_harness(
    kind: str, target: DeployTarget[Any, Any], url: str, capsys: Any, tmp_path: Path
) -> Harness:
    def register(version: int) -> None:
        folder = tmp_path / f"answer-{version}"
        shutil.copytree(FIXTURES / "models" / "answer", folder)
        (folder / "weights" / "answer.txt").write_text(f"{version}\n")
        run(capsys, "register", str(folder), "--model", "m")

    def failing() -> DeployTarget[Any, Any]:
        run(capsys, "register", str(FIXTURES / "models" / "broken"), "--model", "m")
        return target

    return Harness(
        kind=kind,
        target=target,
        register=register,
        served=lambda v: f"m-v{v}" in triton_ready(url),
        unserve=lambda v: triton_request(url, f"/v2/repository/models/m-v{v}/unload", {}) and None,
        failing=failing,
        mutations=lambda: None,
    )


def bucket_keys(prefix: str) -> set[str]:
    from mlops_cli.aws import client

    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def mme_harness(
    kind: str,
    target: DeployTarget[Any, Any],
    failing: Callable[[], DeployTarget[Any, Any]],
    mutations: Callable[[], int | None],
    capsys: Any,
    tmp_path: Path,
) -> Harness:
    from mlops_cli.aws import client

    prefix = f"{target.spec.name}/"  # type: ignore[attr-defined]

    def register(version: int) -> None:
        folder = make_model(tmp_path / "src", "m", version=version, scale=version)
        run(capsys, "register", str(folder))

    return Harness(
        kind=kind,
        target=target,
        register=register,
        served=lambda v: f"m-v{v}.tar.gz" in bucket_keys(prefix),
        unserve=lambda v: (
            client("s3").delete_object(Bucket=BUCKET, Key=f"{prefix}m-v{v}.tar.gz") and None
        ),
        failing=failing,
        mutations=mutations,
    )


@pytest.fixture
def harness(
    request: pytest.FixtureRequest, project: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    kind: str = request.param
    settings = resolve_settings(cwd=project, environ=dict(os.environ), set_pairs=[])
    if kind == "local":
        local = request.getfixturevalue("local_triton")
        monkeypatch.setenv("MLOPS_WORKSPACE", str(local.workspace.root))
        settings = resolve_settings(cwd=project, environ=dict(os.environ), set_pairs=[])
        target = open_target(settings, "local")
        url = local.read_state().http_url
        yield triton_harness(kind, target, url, capsys, project)
        return
    if kind == "triton":
        yield from _fleet_harness(settings, project, capsys)
        return
    request.getfixturevalue("aws")
    from mlops_cli.aws import client

    client("s3").create_bucket(Bucket=BUCKET)
    if kind == "mme-local":
        server = request.getfixturevalue("mme_server")
        endpoint = _endpoint_file(project, "contract", {"local": {"url": server.url()}})
        broken = _endpoint_file(project, "refused", {"local": {"url": server.url()}})

        def refused() -> DeployTarget[Any, Any]:
            from dataclasses import replace

            chosen = open_target(settings, "mme-local", endpoint=broken)
            spec = chosen.spec  # type: ignore[attr-defined]
            # a registration mme-local refuses (a budget of 0 MB), as SageMaker refuses a config
            chosen.spec = replace(spec, local=replace(spec.local, memory_budget_mb=0))  # type: ignore[attr-defined]
            return chosen

        target = open_target(settings, "mme-local", endpoint=endpoint)
        yield mme_harness(kind, target, refused, lambda: None, capsys, project)
        return
    moto = request.getfixturevalue("aws")
    role = {"role_arn": ROLE, "instance_type": "ml.g5.xlarge"}
    endpoint = _endpoint_file(project, "contract", role)
    fail = {"tags": {"mlops-test:fail-update": "true"}, **role}
    broken = _endpoint_file(project, "refused", fail)
    target = open_target(settings, "sagemaker-mme", endpoint=endpoint)
    yield mme_harness(
        kind,
        target,
        lambda: open_target(settings, "sagemaker-mme", endpoint=broken),
        lambda: len(moto.mutating_calls()),
        capsys,
        project,
    )


def _endpoint_file(root: Path, name: str, extra: dict[str, Any]) -> Path:
    path = root / f"{name}.json"
    path.write_text(json.dumps({"name": name, "s3_prefix": f"s3://{BUCKET}/{name}/", **extra}))
    return path


def _fleet_harness(settings: Any, root: Path, capsys: Any) -> Iterator[Harness]:
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    repository = root / "fleet-repository"
    repository.mkdir()
    server_settings = resolve_settings(
        cwd=root, environ={}, set_pairs=[f"workspace={root / 'server'}"]
    )
    server = LocalTriton(
        Workspace(root / "server"), server_settings.local, model_repository=repository
    )
    server.up()
    try:
        state = server.read_state()
        assert state is not None
        entry = {
            "name": "one",
            "url": state.http_url,
            "grpc_url": f"127.0.0.1:{state.grpc_port}",
            "memory_mb": 4000,
        }
        fleet = root / "fleet.json"
        fleet.write_text(
            json.dumps({"name": "contract", "repository": repository.name, "servers": [entry]})
        )
        target = open_target(settings, "triton", fleet=fleet)
        yield triton_harness("triton", target, state.http_url, capsys, root)
    finally:
        server.down()


def records_of(harness: Harness) -> list[Any]:
    return [r for r in registry().list_deployments("m") if r.target == harness.target.id]


pytestmark = [pytestmark, pytest.mark.parametrize("harness", TARGETS, indirect=True)]


def test_an_identical_second_deploy_changes_nothing(harness: Harness) -> None:
    harness.register(1)
    first = roll(harness.target, 1)
    assert first.applied and harness.served(1)
    recorded = records_of(harness)
    before = harness.mutations()

    again = roll(harness.target, 1)

    assert not again.applied and not again.plan.changes
    assert [a.op for a in again.plan.actions if a.op != "keep"] == []
    assert harness.mutations() == before  # no mutating call at all (None: not counted)
    assert records_of(harness) == recorded and harness.served(1)


def test_a_failed_apply_leaves_nothing_behind(harness: Harness) -> None:
    harness.register(1)
    target = harness.failing()
    # Triton: the broken package, registered as m v2; MME: m v1 on an endpoint that refuses it
    failing_version = 2 if harness.kind in ("local", "triton") else 1
    with pytest.raises(MlopsError):
        roll(target, failing_version)
    reg = registry()
    assert [r for r in reg.list_deployments("m") if r.target == target.id] == []
    assert reg.list_aliases("m") == []
    if harness.kind in ("local", "triton"):
        assert not harness.served(2)
    else:
        prefix = f"{target.spec.name}/"  # type: ignore[attr-defined]
        assert bucket_keys(prefix) == set()


def test_retire_is_idempotent(harness: Harness) -> None:
    harness.register(1)
    roll(harness.target, 1)
    [record] = records_of(harness)
    detail = harness.target.parse_detail(record)
    harness.target.retire("m", 1, detail)
    harness.target.retire("m", 1, detail)  # twice is fine
    assert not harness.served(1)


def test_status_reports_drift_both_ways(harness: Harness) -> None:
    harness.register(1)
    harness.register(2)
    roll(harness.target, 1)
    [status] = harness.target.status(records_of(harness))
    assert status.state == "READY"

    # served, but not recorded: v2 deployed beside v1, then its record forgotten
    deploy_beside = roll(harness.target, 2, alias=None)
    assert deploy_beside.applied
    reg = registry()
    reg.remove_deployment("m", 2, harness.target.id)
    found = {(s.version, s.state) for s in harness.target.status(records_of(harness))}
    assert (2, "DRIFT") in found

    # recorded, but not served: v2's record back, and v2 gone from the servers
    reg.record_deployment("m", 2, harness.target.id, detail=deploy_beside.detail)
    harness.unserve(2)
    states = {s.version: s for s in harness.target.status(records_of(harness))}
    assert states[2].state == "DRIFT"
    assert states[1].state == "READY"


def test_declared_capabilities_are_honoured(harness: Harness) -> None:
    harness.register(1)
    roll(harness.target, 1)
    [record] = records_of(harness)
    reg = registry()
    store = os.environ["MLOPS_STORE"]
    desired = desired_state(
        resolve_version(reg, "m@1"), lambda root: open_store(root or store), target=harness.target
    )
    streaming = InvokeRequest(inputs={}, spec=desired.spec, stream=True)
    if not harness.target.capabilities.streaming:
        with pytest.raises(NotSupportedError, match="cannot stream"):
            harness.target.invoke(record, streaming)
    else:  # Triton streams what a decoupled model streams; this model answers once
        settings = resolve_settings(cwd=Path.cwd(), environ=dict(os.environ), set_pairs=[])
        rebuilt = rebuild_target(settings, record.target, [record])
        assert rebuilt.id == harness.target.id  # rebuilt from its record alone
        answer = InvokeRequest(inputs={"x": [0.0]}, spec=desired.spec)
        [chunk] = list(rebuilt.invoke(record, answer))
        assert chunk.outputs
