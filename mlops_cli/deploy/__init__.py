"""Deploy targets and the engine that drives them (see :mod:`mlops_cli.deploy.base`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.deploy.base import Chunk, DeploymentStatus, DeployTarget, InvokeRequest
from mlops_cli.errors import UsageError
from mlops_cli.progress import SILENT, Reporter

TARGETS = ("local", "triton", "sagemaker-mme", "mme-local")


def open_target(
    settings: Settings,
    kind: str | None = None,
    *,
    fleet: Path | None = None,
    endpoint: Path | None = None,
    reporter: Reporter = SILENT,
) -> DeployTarget:
    """The deploy target ``kind`` (default: the configured one), built from its file."""
    kind = kind or settings.target
    if kind == "local":
        from mlops_cli.deploy.local import LocalTarget

        return LocalTarget.from_settings(settings, reporter=reporter)
    if kind == "triton":
        if fleet is None:
            raise UsageError("the triton target needs a fleet file", hint="--fleet fleet.yaml")
        from mlops_cli.deploy.fleet import FleetTarget, load_fleet

        return FleetTarget(load_fleet(fleet))
    if kind in ("sagemaker-mme", "mme-local"):
        from mlops_cli.deploy.sagemaker import open_sagemaker_target

        return open_sagemaker_target(settings, kind, endpoint=endpoint, reporter=reporter)
    raise UsageError(f"unknown target {kind!r}", hint=f"one of {', '.join(TARGETS)}")


def invoke_recorded(record: Mapping[str, Any], request: InvokeRequest) -> Iterator[Chunk]:
    """Send ``request`` to a recorded deployment, from its registry record alone (the record's
    detail says where it is served), without the fleet or endpoint file."""
    kind = str(record["target"]).split(":", 1)[0]
    model, version, detail = record["model"], int(record["version"]), record.get("detail") or {}
    if kind in ("local", "triton"):
        from mlops_cli.deploy.triton import invoke_triton

        if kind == "local":  # the server that runs now, not the port recorded at deploy time
            from mlops_cli.deploy.local import live_detail

            detail = live_detail(detail)
        return invoke_triton(model, version, detail, request)
    if kind in ("sagemaker-mme", "mme-local"):
        from mlops_cli.deploy.sagemaker import invoke_recorded as invoke_sagemaker

        return invoke_sagemaker(model, version, detail, request)
    raise UsageError(f"unknown target {kind!r} in a deployment record of {model} v{version}")


def observe(
    settings: Settings,
    records: Sequence[Mapping[str, Any]],
    *,
    fleet: Path | None = None,
    endpoint: Path | None = None,
) -> list[DeploymentStatus]:
    """Observe recorded deployments, target by target, from the records alone (a fleet or
    endpoint file, when given, also reveals what is served but not recorded)."""
    by_target: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_target.setdefault(str(record["target"]), []).append(record)
    if fleet is not None:
        from mlops_cli.deploy.fleet import FleetTarget, load_fleet

        fleet_target = FleetTarget(load_fleet(fleet))
        by_target.setdefault(fleet_target.id, [])
    found: list[DeploymentStatus] = []
    for target_id, recorded in sorted(by_target.items()):
        kind, _, name = target_id.partition(":")
        if kind == "local":
            from mlops_cli.deploy.local import LocalTarget

            found.extend(LocalTarget.from_settings(settings).status(recorded))
        elif kind == "triton":
            from mlops_cli.deploy.fleet import FleetTarget, fleet_from_records, load_fleet

            spec = load_fleet(fleet) if fleet is not None else None
            if spec is None or spec.name != name:
                spec = fleet_from_records(name, recorded)
            found.extend(FleetTarget(spec).status(recorded))
        elif kind in ("sagemaker-mme", "mme-local"):
            from mlops_cli.deploy import sagemaker

            found.extend(
                sagemaker.status_recorded(settings, target_id, recorded, endpoint=endpoint)
            )
        else:
            found.extend(
                DeploymentStatus(
                    model=str(r["model"]),
                    version=int(r["version"]),
                    target=target_id,
                    where="",
                    state="UNKNOWN",
                    note="unknown target kind",
                )
                for r in recorded
            )
    return sorted(found, key=lambda s: (s.model, s.version, s.target, s.where))


__all__ = ["TARGETS", "DeployTarget", "invoke_recorded", "observe", "open_target"]
