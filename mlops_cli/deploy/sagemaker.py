"""The ``sagemaker-mme`` and ``mme-local`` targets: SageMaker multi-model endpoints.

A version is served by publishing its ``model.tar.gz`` as ``<prefix><model>-v<version>.tar.gz``
under the endpoint's S3 prefix; the endpoint loads it on its first invocation with that
``TargetModel``. ``sagemaker-mme`` also makes sure the endpoint itself exists as the endpoint file
describes (:mod:`mlops_cli.deploy.sagemaker_control`); ``mme-local`` makes sure the workspace's
mme-local server knows the endpoint. Retiring a version removes its tarball (and, on mme-local,
unloads it). An identical second deploy only describes: it makes no mutating call.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops_cli.aws.s3 import S3Prefix
from mlops_cli.config import Settings
from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    Chunk,
    DeploymentStatus,
    DeployTarget,
    Desired,
    InvokeRequest,
    Plan,
    State,
)
from mlops_cli.deploy.sagemaker_control import ControlPlane
from mlops_cli.deploy.sagemaker_endpoint import (
    EndpointSpec,
    LocalSettings,
    default_image,
    load_endpoint,
    region_of,
)
from mlops_cli.deploy.sagemaker_iam import iam_policy
from mlops_cli.deploy.sagemaker_runtime import invoke_recorded as _invoke_recorded
from mlops_cli.errors import MlopsError, NotFoundError, UsageError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.render.sagemaker import publish_tarball

_TARBALL_RE = re.compile(r"(?P<model>.+)-v(?P<version>\d+)\.tar\.gz")


class MultiModelTarget(DeployTarget):
    """What both MME targets share: tarballs under the prefix, records, invocation."""

    def __init__(self, spec: EndpointSpec) -> None:
        self.spec = spec
        self.id = f"{self.kind}:{spec.name}"

    # -- S3 -----------------------------------------------------------------------------------

    def _prefix(self) -> S3Prefix:
        return S3Prefix(self.spec.location)

    def _tarball_exists(self, model: str, version: int) -> bool:
        return self._prefix().head(self.spec.tarball_name(model, version)) is not None

    def _delete_tarball(self, model: str, version: int) -> None:
        with contextlib.suppress(NotFoundError):  # no bucket: no tarball either
            self._prefix().delete(self.spec.tarball_name(model, version))

    def _published_versions(self) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for item in self._prefix().list_objects():
            match = _TARBALL_RE.fullmatch(item.name)
            if match and "/" not in item.name:
                found.setdefault(match["model"], set()).add(int(match["version"]))
        return found

    def _publish_plan(self, desired: Desired, records: Sequence[Mapping[str, Any]]) -> Plan:
        plan = Plan(target=self.id, model=desired.model, version=desired.version)
        uri = self.spec.tarball_uri(desired.model, desired.version)
        recorded = any(int(r["version"]) == desired.version for r in records)
        published = self._tarball_exists(desired.model, desired.version)
        op = ("keep" if recorded else "adopt") if published else "publish"
        plan.actions.append(Action(op, desired.model, desired.version, self.spec.name, uri))
        plan.state.update(desired=desired, publish=not published, adopt=op == "adopt")
        return plan

    def _publish(self, plan: Plan, reporter: Reporter) -> bool:
        if not plan.state.get("publish"):
            return False
        desired: Desired = plan.state["desired"]
        publish_tarball(
            desired.store,
            desired.manifest,
            self.spec.tarball_uri(desired.model, desired.version),
            reporter=reporter,
        )
        return True

    @contextlib.contextmanager
    def _publishing(self, plan: Plan, reporter: Reporter) -> Iterator[None]:
        """Publish the planned tarball; delete it again if what the block does fails."""
        published = self._publish(plan, reporter)
        try:
            yield
        except BaseException:
            if published:  # the block's error is the one raised; a failed clean-up is a note
                desired: Desired = plan.state["desired"]
                try:
                    self._delete_tarball(desired.model, desired.version)
                except MlopsError as exc:
                    uri = self.spec.tarball_uri(desired.model, desired.version)
                    reporter.note(f"{uri} was not removed: {exc.message}")
            raise

    def detail(self, model: str, version: int, **extra: Any) -> dict[str, Any]:
        return {
            "where": self.spec.name,
            "endpoint": self.spec.name,
            "target_model": self.spec.tarball_name(model, version),
            "tarball": self.spec.tarball_uri(model, version),
            "s3_prefix": self.spec.s3_prefix,
            **extra,
        }

    def _drift(
        self, records: Sequence[Mapping[str, Any]], published: Mapping[str, set[int]]
    ) -> list[DeploymentStatus]:
        recorded = {(str(r["model"]), int(r["version"])) for r in records}
        models = {model for model, _ in recorded}
        return [
            DeploymentStatus(
                model=model,
                version=version,
                target=self.id,
                where=self.spec.name,
                state="DRIFT",
                note="published under the endpoint's prefix, but not recorded in the registry",
            )
            for model in sorted(models)
            for version in sorted(published.get(model, set()))
            if (model, version) not in recorded
        ]

    def invoke(
        self, model: str, version: int, detail: Mapping[str, Any], request: InvokeRequest
    ) -> Iterator[Chunk]:
        return invoke_recorded(model, version, detail, request)


class SageMakerMMETarget(MultiModelTarget):
    """A SageMaker multi-model endpoint, managed with boto3."""

    kind = "sagemaker-mme"
    capabilities = Capabilities(streaming=False, multi_model=True, explicit_load=False, gpu=True)

    def _control(self, desired: Desired | None) -> ControlPlane:
        self.spec.require_role()
        region = region_of(self.spec)
        gpu = desired is not None and desired.device == "gpu"
        instance_type = self.spec.chosen_instance_type(gpu=gpu)
        control = ControlPlane(
            self.spec,
            region=region,
            image=self.spec.image_uri or default_image(region, gpu=gpu),
            instance_type=instance_type,
        )
        if self.spec.instance_type is None and not gpu:
            # No type named: an existing endpoint keeps its type, whatever the model asks for.
            observed = control.observe()
            if observed is not None and observed.instance_type:
                control.instance_type = observed.instance_type
        return control

    def plan(self, desired: Desired, records: Sequence[Mapping[str, Any]]) -> Plan:
        control = self._control(desired)
        endpoint_plan = control.plan()  # refuses a Failed endpoint before anything
        plan = self._publish_plan(desired, records)
        plan.actions = endpoint_plan.actions + plan.actions
        plan.state.update(control=control, endpoint_plan=endpoint_plan)
        return plan

    def apply(self, plan: Plan, *, reporter: Reporter = SILENT) -> dict[str, Any]:
        desired: Desired = plan.state["desired"]
        control: ControlPlane = plan.state["control"]
        with self._publishing(plan, reporter):
            control.apply(plan.state["endpoint_plan"], reporter=reporter)
        return self.detail(
            desired.model,
            desired.version,
            region=control.region,
            instance_type=control.instance_type,
            model_name=control.model_name(),
            endpoint_config=control.config_name(),
        )

    def retire(
        self, model: str, version: int, detail: Mapping[str, Any], *, reporter: Reporter = SILENT
    ) -> None:
        with running(reporter, f"removing {self.spec.tarball_name(model, version)}"):
            self._delete_tarball(model, version)

    def status(self, records: Sequence[Mapping[str, Any]]) -> list[DeploymentStatus]:
        region = region_of(self.spec)
        observed = ControlPlane(self.spec, region=region, image="", instance_type="").observe()
        published = self._published_versions()
        found = []
        for record in records:
            model, version = str(record["model"]), int(record["version"])
            common: dict[str, Any] = {
                "model": model,
                "version": version,
                "target": self.id,
                "where": self.spec.name,
            }
            if observed is None:
                found.append(DeploymentStatus(state="UNAVAILABLE", note="no endpoint", **common))
            elif version not in published.get(model, set()):
                note = f"{self.spec.tarball_name(model, version)} is missing from the prefix"
                found.append(DeploymentStatus(state="DRIFT", note=note, **common))
            elif observed.status != "InService":
                reason = f": {observed.failure_reason}" if observed.failure_reason else ""
                state: State = (
                    "LOADING" if observed.status in ("Creating", "Updating") else "UNAVAILABLE"
                )
                found.append(
                    DeploymentStatus(
                        state=state, note=f"endpoint {observed.status}{reason}", **common
                    )
                )
            else:
                found.append(DeploymentStatus(state="READY", note="loads on first use", **common))
        return found + self._drift(records, published)


class MMELocalTarget(MultiModelTarget):
    """mme-local: the same protocol served by the workspace's loopback server."""

    kind = "mme-local"
    capabilities = Capabilities(streaming=False, multi_model=True, explicit_load=True, gpu=False)

    def __init__(self, spec: EndpointSpec, *, workspace_root: Path) -> None:
        super().__init__(spec)
        self.workspace_root = workspace_root

    def url(self) -> str:
        if self.spec.local.url:
            return self.spec.local.url.rstrip("/")
        from mlops_cli.mme.manager import LocalMME
        from mlops_cli.workspace import Workspace

        return LocalMME(Workspace(self.workspace_root)).url()

    def _registration(self) -> dict[str, Any]:
        return {
            "s3_prefix": self.spec.s3_prefix,
            "backend": self.spec.local.backend,
            "memory_budget_mb": self.spec.local.memory_budget_mb,
        }

    def _observed(self, url: str) -> dict[str, Any] | None:
        from mlops_cli.errors import ServerError
        from mlops_cli.mme.manager import http_json

        try:
            found: dict[str, Any] = http_json(f"{url}/mme/endpoints/{self.spec.name}")
        except ServerError as exc:
            if "HTTP 400" in exc.message:
                return None
            raise
        return found

    def plan(self, desired: Desired, records: Sequence[Mapping[str, Any]]) -> Plan:
        url = self.url()
        observed = self._observed(url)
        plan = self._publish_plan(desired, records)
        wanted = self._registration()
        register = observed is None or any(observed.get(k) != v for k, v in wanted.items())
        if register:
            op = "create" if observed is None else "update"
            plan.actions.insert(
                0,
                Action(
                    op,
                    "endpoint",
                    where=f"mme-local {url}",
                    detail=f"{self.spec.name}: {wanted['backend']}, "
                    f"{wanted['memory_budget_mb']:g} MB budget",
                ),
            )
        plan.state.update(url=url, register=register)
        return plan

    def apply(self, plan: Plan, *, reporter: Reporter = SILENT) -> dict[str, Any]:
        from mlops_cli.mme.manager import http_json

        desired: Desired = plan.state["desired"]
        url = plan.state["url"]
        with self._publishing(plan, reporter):
            if plan.state.get("register"):
                http_json(
                    f"{url}/mme/endpoints/{self.spec.name}", method="PUT", body=self._registration()
                )
        return self.detail(
            desired.model,
            desired.version,
            region=self.spec.region or "us-east-1",
            runtime_url=url,
            backend=self.spec.local.backend,
        )

    def retire(
        self, model: str, version: int, detail: Mapping[str, Any], *, reporter: Reporter = SILENT
    ) -> None:
        from mlops_cli.errors import ServerError
        from mlops_cli.mme.manager import http_json

        target = self.spec.tarball_name(model, version)
        with running(reporter, f"unloading {target}"):
            self._delete_tarball(model, version)
            url = str(detail.get("runtime_url") or self.url())
            try:
                http_json(f"{url}/mme/endpoints/{self.spec.name}/models/{target}", method="DELETE")
            except ServerError as exc:
                reporter.note(f"mme-local did not unload {target}: {exc.message}")

    def status(self, records: Sequence[Mapping[str, Any]]) -> list[DeploymentStatus]:
        url = self.url()
        observed = self._observed(url) or {}
        metrics = observed.get("models", {})
        loaded = {m["target"] for m in observed.get("loaded", [])}
        published = self._published_versions()
        found = []
        for record in records:
            model, version = str(record["model"]), int(record["version"])
            target = self.spec.tarball_name(model, version)
            usage = metrics.get(target, {})
            common: dict[str, Any] = {
                "model": model,
                "version": version,
                "target": self.id,
                "where": self.spec.name,
                "requests": usage.get("invocations"),
                "failures": usage.get("errors"),
                "latency_ms": usage.get("mean_invoke_ms"),
                "detail": usage,
            }
            state: State
            if not observed:
                state, note = "UNAVAILABLE", f"mme-local at {url} does not know the endpoint"
            elif version not in published.get(model, set()):
                state, note = "DRIFT", f"{target} is missing from the prefix"
            else:
                state = "READY"
                note = "loaded" if target in loaded else "not loaded (loads on first use)"
            found.append(DeploymentStatus(state=state, note=note, **common))
        return found + self._drift(records, published)


def open_sagemaker_target(
    settings: Settings,
    kind: str,
    *,
    endpoint: Path | None = None,
    reporter: Reporter = SILENT,
) -> DeployTarget:
    """The ``sagemaker-mme`` or ``mme-local`` target of an endpoint file."""
    if endpoint is None:
        raise UsageError(
            f"the {kind} target needs an endpoint file", hint="--endpoint endpoint.yaml"
        )
    spec = load_endpoint(endpoint)
    if kind == "mme-local":
        return MMELocalTarget(spec, workspace_root=settings.workspace)
    return SageMakerMMETarget(spec)


def status_recorded(
    settings: Settings,
    target_id: str,
    records: Sequence[Mapping[str, Any]],
    *,
    endpoint: Path | None = None,
) -> list[DeploymentStatus]:
    """Observe recorded MME deployments: from the endpoint file when it names this endpoint,
    else from what the records hold (endpoint name, prefix, region, mme-local URL)."""
    kind, _, name = target_id.partition(":")
    spec = load_endpoint(endpoint) if endpoint is not None else None
    if spec is None or spec.name != name:
        detail: Mapping[str, Any] = next(
            (r.get("detail") or {} for r in records if r.get("detail")), {}
        )
        if not detail.get("s3_prefix"):
            return [
                DeploymentStatus(
                    model=str(r["model"]),
                    version=int(r["version"]),
                    target=target_id,
                    where=name,
                    state="UNKNOWN",
                    note="the record names no S3 prefix; pass --endpoint",
                )
                for r in records
            ]
        spec = EndpointSpec(
            name=name,
            s3_prefix=str(detail["s3_prefix"]),
            region=detail.get("region"),
            local=LocalSettings(url=detail.get("runtime_url")),
        )
    if kind == "mme-local":
        return MMELocalTarget(spec, workspace_root=settings.workspace).status(records)
    return SageMakerMMETarget(spec).status(records)


def invoke_recorded(
    model: str, version: int, detail: Mapping[str, Any], request: InvokeRequest
) -> Iterator[Chunk]:
    """Invoke a version recorded by either MME target (``invoke_endpoint`` with TargetModel)."""
    return _invoke_recorded(model, version, detail, request)


def iam_policy_for(endpoint: Path) -> dict[str, Any]:
    """The least-privilege IAM policy ``mlops deploy --target sagemaker-mme`` needs."""
    return iam_policy(load_endpoint(endpoint))


__all__ = [
    "MMELocalTarget",
    "SageMakerMMETarget",
    "iam_policy_for",
    "invoke_recorded",
    "open_sagemaker_target",
    "status_recorded",
]
