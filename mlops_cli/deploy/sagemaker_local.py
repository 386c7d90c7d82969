"""The ``mme-local`` target: a SageMaker multi-model endpoint played by the workspace's loopback
server (:mod:`mlops_cli.mme`), with S3 wherever the standard AWS configuration points.

Deploying publishes the version's tarball as ``sagemaker-mme`` does, makes sure mme-local knows the
endpoint (its prefix, backend container, memory and disk budgets, whether it caches models), and
sends the warmup through the runtime protocol; a version that does not answer is unloaded again
and its tarball removed. The endpoint's backend runs one container, as a SageMaker endpoint runs
one image: a model of another runtime is refused at plan time.

Status reads mme-local's own counts per TargetModel (invocations, errors, loads, cache hits,
evictions) and reports FAILED, with the container's message, for a version whose last load
failed, recorded or not (a deploy that failed leaves one such row beside the version serving).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    DeploymentRecord,
    DeploymentStatus,
    Desired,
    State,
)
from mlops_cli.deploy.multimodel import MMEPlan, MultiModelTarget
from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec
from mlops_cli.deploy.sagemaker_images import IncompatibleImageError, container_of
from mlops_cli.deploy.sagemaker_runtime import SageMakerDetail
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.triton.naming import parse_versioned_name

_BACKEND_NAMES = {"triton": "NVIDIA Triton", "mms": "multi-model-server"}


@dataclass(kw_only=True)
class MMELocalPlan(MMEPlan):
    url: str
    register: bool = False


class MMELocalTarget(MultiModelTarget[MMELocalPlan]):
    """mme-local: the same protocol served by the workspace's loopback server."""

    kind = "mme-local"
    capabilities = Capabilities(streaming=False, multi_model=True, explicit_load=True, gpu=False)

    def __init__(
        self, spec: EndpointSpec, *, workspace_root: Path, unresolved: str | None = None
    ) -> None:
        super().__init__(spec, unresolved=unresolved)
        self.workspace_root = workspace_root

    @classmethod
    def _build(
        cls, spec: EndpointSpec, settings: Settings, *, unresolved: str | None = None
    ) -> MMELocalTarget:
        return cls(spec, workspace_root=settings.workspace, unresolved=unresolved)

    def url(self) -> str:
        if self.spec.local.url:
            return self.spec.local.url.rstrip("/")
        from mlops_cli.local.mme import LocalMME
        from mlops_cli.workspace import Workspace

        return LocalMME(Workspace(self.workspace_root)).url()

    def _registration(self) -> dict[str, Any]:
        local = self.spec.local
        return {
            "s3_prefix": self.spec.s3_prefix,
            "backend": local.backend,
            "memory_budget_mb": local.memory_budget_mb,
            "disk_budget_mb": local.disk_budget_mb,  # None: mme-local's default
            "model_cache": self.spec.model_cache,
        }

    def _observed(self, url: str) -> dict[str, Any] | None:
        from mlops_cli.errors import ServerError
        from mlops_cli.local.mme import http_json

        try:
            found: dict[str, Any] = http_json(f"{url}/mme/endpoints/{self.spec.name}")
        except ServerError as exc:
            if "HTTP 400" in exc.message:
                return None
            raise
        return found

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> MMELocalPlan:
        needed = container_of(desired.spec.runtime)
        if needed != self.spec.local.backend:
            raise IncompatibleImageError(
                f"{desired.model} v{desired.version} is a {desired.spec.runtime} model, which runs "
                f"in {_BACKEND_NAMES[needed]}, and mme-local endpoint {self.spec.name} runs "
                f"{_BACKEND_NAMES[self.spec.local.backend]}",
                hint=f"deploy it to an endpoint file with local: {{backend: {needed}}}",
            )
        url = self.url()
        observed = self._observed(url)
        action, publish, adopt = self._publish_step(desired, records)
        wanted = self._registration()
        register = observed is None or any(observed.get(k) != v for k, v in wanted.items())
        actions = [action]
        if publish or adopt:
            actions.append(self._warm_action(desired))
        plan = MMELocalPlan(
            self.id,
            desired.model,
            desired.version,
            actions,
            desired=desired,
            publish=publish,
            adopt=adopt,
            url=url,
            register=register,
        )
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
        return plan

    def apply(self, plan: MMELocalPlan, *, reporter: Reporter = SILENT) -> SageMakerDetail:
        from mlops_cli.local.mme import http_json

        desired, url = plan.desired, plan.url
        detail = self.detail(
            desired.model,
            desired.version,
            region=self.spec.region or "us-east-1",
            runtime_url=url,
            backend=self.spec.local.backend,
        )
        with self._publishing(plan, reporter):
            if plan.register:
                http_json(
                    f"{url}/mme/endpoints/{self.spec.name}", method="PUT", body=self._registration()
                )
            try:
                self._warm(plan, detail, reporter)
            except MlopsError:
                self._unload(url, detail.target_model, reporter)
                raise
        return detail

    def _unload(self, url: str, target: str, reporter: Reporter) -> None:
        from mlops_cli.errors import ServerError
        from mlops_cli.local.mme import http_json

        try:
            http_json(f"{url}/mme/endpoints/{self.spec.name}/models/{target}", method="DELETE")
        except ServerError as exc:
            reporter.note(f"mme-local did not unload {target}: {exc.message}")

    def retire(
        self, model: str, version: int, detail: SageMakerDetail, *, reporter: Reporter = SILENT
    ) -> None:
        target = self.spec.tarball_name(model, version)
        with running(reporter, f"unloading {target}"):
            self._delete_tarball(model, version)
            self._unload(detail.runtime_url or self.url(), target, reporter)

    def _observe(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        url = self.url()
        observed = self._observed(url) or {}
        metrics: Mapping[str, Any] = observed.get("models", {})
        loaded = {m["target"] for m in observed.get("loaded", [])}
        published = self._published_versions()
        found = []
        for record in records:
            model, version = record.model, record.version
            target = self.spec.tarball_name(model, version)
            usage = metrics.get(target, {})
            state: State
            if not observed:
                state, note = "UNAVAILABLE", f"mme-local at {url} does not know the endpoint"
            elif version not in published.get(model, set()):
                state, note = "DRIFT", f"{target} is missing from the prefix"
            elif usage.get("last_load_error"):
                state, note = "FAILED", f"its last load failed: {usage['last_load_error']}"
            else:
                state = "READY"
                note = "loaded" if target in loaded else "not loaded (loads on first use)"
            found.append(DeploymentStatus(state=state, note=note, **self._common(record, usage)))
        return found + self._failed_deploys(records, metrics) + self._drift(records, published)

    def _common(self, record: DeploymentRecord, usage: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "model": record.model,
            "version": record.version,
            "target": self.id,
            "where": self.spec.name,
            "requests": usage.get("invocations"),
            "failures": usage.get("errors"),
            "latency_ms": usage.get("mean_invoke_ms"),
            "detail": dict(usage),
        }

    def _failed_deploys(
        self, records: Sequence[DeploymentRecord], metrics: Mapping[str, Any]
    ) -> list[DeploymentStatus]:
        """FAILED rows for versions of the recorded models that are not recorded and whose last
        load failed: what a deploy that did not answer its warmup leaves to see."""
        recorded = {(r.model, r.version) for r in records}
        models = {model for model, _ in recorded}
        rows = []
        for target, usage in sorted(metrics.items()):
            parsed = parse_versioned_name(target.removesuffix(".tar.gz"))
            error = usage.get("last_load_error") if isinstance(usage, Mapping) else None
            if parsed is None or parsed in recorded or parsed[0] not in models or not error:
                continue
            rows.append(
                DeploymentStatus(
                    model=parsed[0],
                    version=parsed[1],
                    target=self.id,
                    where=self.spec.name,
                    state="FAILED",
                    note=f"not deployed: its last load failed: {error}",
                    requests=usage.get("invocations"),
                    failures=usage.get("errors"),
                    detail=dict(usage),
                )
            )
        return rows


__all__ = ["MMELocalPlan", "MMELocalTarget"]
