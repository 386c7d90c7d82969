"""Deploy targets and the engine that drives them (see :mod:`mlops_cli.deploy.base`).

Targets are picked by kind from one table (:mod:`mlops_cli.deploy.kinds`). :func:`observe` is
``mlops status``: it rebuilds each target from its deployment records and asks the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlops_cli.config import Settings
from mlops_cli.deploy.base import DeploymentStatus, DeployTarget
from mlops_cli.deploy.kinds import TARGETS, open_target, rebuild_target
from mlops_cli.registry.records import DeploymentRecord


def observe(
    settings: Settings,
    records: Sequence[DeploymentRecord],
    *,
    fleet: Path | None = None,
    endpoint: Path | None = None,
) -> list[DeploymentStatus]:
    """Observe recorded deployments, target by target, from the records alone (a fleet or
    endpoint file, when given, also reveals what is served but not recorded)."""
    by_target: dict[str, list[DeploymentRecord]] = {}
    for record in records:
        by_target.setdefault(record.target, []).append(record)
    if fleet is not None:
        by_target.setdefault(open_target(settings, "triton", fleet=fleet).id, [])
    found: list[DeploymentStatus] = []
    for target_id, recorded in sorted(by_target.items()):
        if target_id.partition(":")[0] not in TARGETS:
            found.extend(
                DeploymentStatus(
                    model=r.model,
                    version=r.version,
                    target=target_id,
                    where="",
                    state="UNKNOWN",
                    note="unknown target kind",
                )
                for r in recorded
            )
            continue
        target = rebuild_target(settings, target_id, recorded, fleet=fleet, endpoint=endpoint)
        found.extend(target.status(recorded))
    return sorted(found, key=lambda s: (s.model, s.version, s.target, s.where))


__all__ = ["TARGETS", "DeployTarget", "observe", "open_target"]
