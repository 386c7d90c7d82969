"""What both multi-model endpoint targets share (``sagemaker-mme``, ``mme-local``): a version is
served by publishing its ``model.tar.gz`` under the endpoint's S3 prefix (laid out as the
container of its runtime loads it, for the device it is served on), answering its warmup through
the endpoint with its ``TargetModel`` (:mod:`mlops_cli.deploy.sagemaker_warmup`: deployed means
answering), recorded as a :class:`SageMakerDetail`, invoked with ``TargetModel``, and observed by
listing the prefix (a tarball published but not recorded is drift). Neither streams: SageMaker's
response streaming takes no ``TargetModel`` (:data:`STREAM_REASON`), which the targets declare.

Retiring a version deletes its tarball at once, and the registry stops routing to it (the router
and ``mlops invoke`` refuse a version that is not deployed). SageMaker itself keeps a loaded model
cached until memory runs short, so a caller that names the TargetModel directly may still get an
answer for a while: ``model_cache: false`` in the endpoint file turns that cache off.

Each concrete target plans its own :class:`MMEPlan` subclass (the endpoint's own changes beside
the tarball) in :mod:`mlops_cli.deploy.sagemaker`.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from mlops_cli.aws.s3 import S3Prefix
from mlops_cli.config import Settings
from mlops_cli.deploy.base import (
    Action,
    Chunk,
    DeploymentRecord,
    DeploymentStatus,
    DeployTarget,
    Desired,
    InvokeRequest,
    Plan,
)
from mlops_cli.deploy.sagemaker_endpoint import EndpointSpec, LocalSettings, load_endpoint
from mlops_cli.deploy.sagemaker_images import check_pairing, choose_image
from mlops_cli.deploy.sagemaker_runtime import STREAM_REASON, SageMakerDetail, invoke_endpoint
from mlops_cli.deploy.sagemaker_warmup import describe_warmup, warm_up
from mlops_cli.errors import MlopsError, NotFoundError, UsageError
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.render.sagemaker import publish_tarball
from mlops_cli.triton.naming import parse_versioned_name


@dataclass(kw_only=True)
class MMEPlan(Plan):
    """What both MME targets plan: the version, and whether its tarball is published now
    (``publish``) or found published and not recorded (``adopt``)."""

    desired: Desired
    publish: bool = False
    adopt: bool = False

    @property
    def warms(self) -> bool:
        """Whether apply sends the warmup: the version is new to the endpoint's records."""
        return self.publish or self.adopt


MP = TypeVar("MP", bound=MMEPlan)


class MultiModelTarget(DeployTarget[MP, SageMakerDetail], Generic[MP]):
    """What both MME targets share: tarballs under the prefix, records, invocation."""

    unsupported: ClassVar[Mapping[str, str]] = {"streaming": STREAM_REASON}

    def __init__(self, spec: EndpointSpec, *, unresolved: str | None = None) -> None:
        self.spec = spec
        self.id = f"{self.kind}:{spec.name}"
        self.unresolved = unresolved  # why the target is not known well enough to observe

    @classmethod
    def parse_detail(cls, record: DeploymentRecord) -> SageMakerDetail:
        return SageMakerDetail.from_record(record)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
        reporter: Reporter = SILENT,
    ) -> MultiModelTarget[MP]:
        if endpoint is None:
            raise UsageError(
                f"the {cls.kind} target needs an endpoint file", hint="--endpoint endpoint.yaml"
            )
        return cls._build(load_endpoint(endpoint), settings)

    @classmethod
    def _build(
        cls, spec: EndpointSpec, settings: Settings, *, unresolved: str | None = None
    ) -> MultiModelTarget[MP]:
        return cls(spec, unresolved=unresolved)

    @classmethod
    def from_records(
        cls,
        settings: Settings,
        target_id: str,
        records: Sequence[DeploymentRecord],
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
    ) -> MultiModelTarget[MP]:
        """From the endpoint file when it names this endpoint, else from what the records hold
        (endpoint name, prefix, region, mme-local URL)."""
        name = target_id.partition(":")[2]
        spec = load_endpoint(endpoint) if endpoint is not None else None
        if spec is not None and spec.name == name:
            return cls._build(spec, settings)
        details = [SageMakerDetail.from_record(r) for r in records]
        detail = next((d for d in details if d.s3_prefix), None)
        if detail is None:
            unknown = EndpointSpec(name=name, s3_prefix="")
            note = "the record names no S3 prefix; pass --endpoint"
            return cls._build(unknown, settings, unresolved=note)
        spec = EndpointSpec(
            name=name,
            s3_prefix=detail.s3_prefix,
            region=detail.region,
            local=LocalSettings(url=detail.runtime_url),
        )
        return cls._build(spec, settings)

    # -- the serving image ----------------------------------------------------------------------

    def _image(self, desired: Desired, *, region: str, instance_type: str) -> str:
        """The image ``desired`` runs in on ``instance_type``: the endpoint file's, else the
        table's for its runtime and the instance's device."""
        return choose_image(
            region=region,
            runtime=desired.spec.runtime,
            device=desired.device,
            image_uri=self.spec.image_uri,
            instance_type=instance_type,
        )

    @staticmethod
    def _check_pairing(desired: Desired, image: str, instance_type: str) -> None:
        """Refuse, before any call, a version that ``image`` on ``instance_type`` cannot serve."""
        check_pairing(
            model=f"{desired.model} v{desired.version}",
            runtime=desired.spec.runtime,
            device=desired.device,
            image=image,
            instance_type=instance_type,
            memory_mb=desired.memory_mb,
        )

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
            if "/" in item.name or not item.name.endswith(".tar.gz"):
                continue
            parsed = parse_versioned_name(item.name.removesuffix(".tar.gz"))
            if parsed is not None:
                found.setdefault(parsed[0], set()).add(parsed[1])
        return found

    def _publish_step(
        self, desired: Desired, records: Sequence[DeploymentRecord]
    ) -> tuple[Action, bool, bool]:
        """The plan's tarball action, and whether to publish it and whether it is adopted."""
        uri = self.spec.tarball_uri(desired.model, desired.version)
        recorded = any(r.version == desired.version for r in records)
        published = self._tarball_exists(desired.model, desired.version)
        op = ("keep" if recorded else "adopt") if published else "publish"
        action = Action(op, desired.model, desired.version, self.spec.name, uri)
        return action, not published, op == "adopt"

    def _warm_action(self, desired: Desired) -> Action:
        return Action(
            "warm",
            desired.model,
            desired.version,
            self.spec.name,
            f"{describe_warmup(desired.spec)}, TargetModel "
            f"{self.spec.tarball_name(desired.model, desired.version)}",
        )

    def _publish(self, plan: MMEPlan, reporter: Reporter) -> bool:
        if not plan.publish:
            return False
        desired = plan.desired
        publish_tarball(
            desired.store,
            desired.manifest,
            self.spec.tarball_uri(desired.model, desired.version),
            device=desired.device,
            reporter=reporter,
        )
        return True

    def _warm(self, plan: MMEPlan, detail: SageMakerDetail, reporter: Reporter) -> None:
        """Send the planned version its warmup through the endpoint (WarmupError when it does
        not answer: the caller is inside :meth:`_publishing`, which removes the tarball)."""
        if not plan.warms:
            return
        desired = plan.desired
        warm_up(
            spec=desired.spec,
            model=desired.model,
            version=desired.version,
            detail=detail,
            timeout_s=self.spec.warmup_timeout,
            reporter=reporter,
        )

    @contextlib.contextmanager
    def _publishing(self, plan: MMEPlan, reporter: Reporter) -> Iterator[None]:
        """Publish the planned tarball; delete it again if what the block does fails."""
        published = self._publish(plan, reporter)
        try:
            yield
        except BaseException:
            if published:  # the block's error is the one raised; a failed clean-up is a note
                desired = plan.desired
                try:
                    self._delete_tarball(desired.model, desired.version)
                except MlopsError as exc:
                    uri = self.spec.tarball_uri(desired.model, desired.version)
                    reporter.note(f"{uri} was not removed: {exc.message}")
            raise

    def detail(self, model: str, version: int, **extra: str | None) -> SageMakerDetail:
        return SageMakerDetail(
            where=self.spec.name,
            endpoint=self.spec.name,
            target_model=self.spec.tarball_name(model, version),
            tarball=self.spec.tarball_uri(model, version),
            s3_prefix=self.spec.s3_prefix,
            **extra,
        )

    def _drift(
        self, records: Sequence[DeploymentRecord], published: Mapping[str, set[int]]
    ) -> list[DeploymentStatus]:
        recorded = {(r.model, r.version) for r in records}
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

    def status(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        if self.unresolved is not None:
            return [
                DeploymentStatus(
                    model=r.model,
                    version=r.version,
                    target=self.id,
                    where=self.spec.name,
                    state="UNKNOWN",
                    note=self.unresolved,
                )
                for r in records
            ]
        return self._observe(records)

    @abstractmethod
    def _observe(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        """:meth:`status` of a target whose endpoint and prefix are known."""

    def _invoke(self, record: DeploymentRecord, request: InvokeRequest) -> Iterator[Chunk]:
        return invoke_endpoint(record.model, record.version, self.parse_detail(record), request)


__all__ = ["MMEPlan", "MultiModelTarget", "SageMakerDetail"]
