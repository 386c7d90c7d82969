"""The one table of deploy targets: kind -> the class that serves it.

Everything that picks a target by kind goes through :func:`target_class`: opening one from its
fleet or endpoint file (:func:`open_target`, the class's ``open``), rebuilding one from its
deployment records (:func:`rebuild_target`, the class's ``from_records``), reading a record's
placement detail (the class's ``parse_detail``). An unknown kind is a UsageError that lists the
valid ones. The classes are imported on first use, so ``mlops --help`` does not load boto3 or
the Triton client; no target module imports this one, so the table sits above them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.errors import UsageError
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.registry.records import DeploymentRecord

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.deploy.base import DeployTarget
    from mlops_cli.deploy.triton import TritonDetail


def _local() -> type[DeployTarget[Any, Any]]:
    from mlops_cli.deploy.local import LocalTarget

    return LocalTarget


def _triton() -> type[DeployTarget[Any, Any]]:
    from mlops_cli.deploy.fleet import FleetTarget

    return FleetTarget


def _sagemaker_mme() -> type[DeployTarget[Any, Any]]:
    from mlops_cli.deploy.sagemaker import SageMakerMMETarget

    return SageMakerMMETarget


def _sagemaker_ic() -> type[DeployTarget[Any, Any]]:
    from mlops_cli.deploy.sagemaker_ic import SageMakerICTarget

    return SageMakerICTarget


def _mme_local() -> type[DeployTarget[Any, Any]]:
    from mlops_cli.deploy.sagemaker import MMELocalTarget

    return MMELocalTarget


TARGETS: dict[str, Callable[[], type[DeployTarget[Any, Any]]]] = {
    "local": _local,
    "triton": _triton,
    "sagemaker-mme": _sagemaker_mme,
    "sagemaker-ic": _sagemaker_ic,
    "mme-local": _mme_local,
}


def target_class(kind: str) -> type[DeployTarget[Any, Any]]:
    """The class that serves ``kind``; UsageError naming the valid kinds for any other."""
    loader = TARGETS.get(kind)
    if loader is None:
        raise UsageError(f"unknown target {kind!r}", hint=f"one of {', '.join(TARGETS)}")
    return loader()


def open_target(
    settings: Settings,
    kind: str | None = None,
    *,
    fleet: Path | None = None,
    endpoint: Path | None = None,
    reporter: Reporter = SILENT,
) -> DeployTarget[Any, Any]:
    """The deploy target ``kind`` (default: the configured one), built from its file (the
    fleet file for ``triton``, the endpoint file for the SageMaker kinds)."""
    chosen = target_class(kind or settings.target)
    return chosen.open(settings, fleet=fleet, endpoint=endpoint, reporter=reporter)


def rebuild_target(
    settings: Settings,
    target_id: str,
    records: Sequence[DeploymentRecord],
    *,
    fleet: Path | None = None,
    endpoint: Path | None = None,
) -> DeployTarget[Any, Any]:
    """The target ``target_id`` rebuilt from its deployment ``records`` by its own class's
    ``from_records`` (with the fleet or endpoint file, when it names the same target)."""
    chosen = target_class(target_id.partition(":")[0])
    return chosen.from_records(settings, target_id, records, fleet=fleet, endpoint=endpoint)


def triton_detail(record: DeploymentRecord) -> TritonDetail:
    """Where a deployment on a Triton target (``local`` or a fleet) is served, parsed by its
    own target: the local target's detail points at the server running now. UsageError for a
    record of another kind."""
    from mlops_cli.deploy.triton import TritonDetail

    detail = target_class(record.kind).parse_detail(record)
    if not isinstance(detail, TritonDetail):
        raise UsageError(
            f"{record.model} v{record.version} is deployed on {record.target}, not on Triton"
        )
    return detail


__all__ = ["TARGETS", "open_target", "rebuild_target", "target_class", "triton_detail"]
