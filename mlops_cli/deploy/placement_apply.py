"""Carrying out a placement plan on a Triton fleet, in an order that never leaves a model unserved.

:func:`apply_placement` takes the plan (``model@version`` -> servers) and the fleet's deployment
records (where each version is served now), and:

1. **loads** every replica the plan adds (writing the version's repository entry first when no
   server has it yet) and waits until it is READY; after each, the version's deployment record
   names every server that serves it, old and new, so the router sends requests there at once;
2. then **unloads** the replicas the plan drops, each only after the record no longer names that
   server (and, because of step 1, after every new home of that version is READY): the last READY
   replica of a version is never removed before its new home answers;
3. stores the plan in the registry (``put_placement``), with its revision.

It runs under the fleet's lease (the same lock deploy and undeploy take). A load the server refuses
stops the run: what was done stays done and recorded, nothing is unloaded, the lease is released
and the error names the server and its message. With ``dry_run`` it only lists the steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlops_cli.deploy.base import Desired
from mlops_cli.deploy.fleet import FleetTarget
from mlops_cli.deploy.lease import hold
from mlops_cli.deploy.triton import TritonDetail
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.registry.base import Registry
from mlops_cli.registry.records import DeploymentRecord
from mlops_cli.triton.naming import versioned_name


class PlacementApplyError(MlopsError):
    """A step of the plan failed; the steps before it stand."""


@dataclass
class Step:
    """One change to one server: ``load`` or ``unload`` of ``key`` (``model@version``)."""

    op: str
    key: str
    server: str
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "model": self.key, "server": self.server, "done": self.done}


@dataclass
class Applied:
    steps: list[Step] = field(default_factory=list)
    revision: int | None = None  # of the stored plan; None on a dry run
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.to_dict() for step in self.steps],
            "placement_revision": self.revision,
            "dry_run": self.dry_run,
        }


def current_assignments(
    records: Sequence[DeploymentRecord], target_id: str
) -> dict[str, tuple[str, ...]]:
    """``model@version`` -> the servers its deployment record on ``target_id`` names."""
    found: dict[str, tuple[str, ...]] = {}
    for record in records:
        if record.target == target_id:
            detail = TritonDetail.from_record(record)
            found[f"{record.model}@{record.version}"] = tuple(s.name for s in detail.servers)
    return found


def plan_steps(
    planned: Mapping[str, Sequence[str]], current: Mapping[str, Sequence[str]]
) -> list[Step]:
    """Every load (first, in plan order) and unload (after) that turns ``current`` into
    ``planned``. A version no longer planned keeps its replicas: undeploy retires versions."""
    loads = [
        Step("load", key, server)
        for key, servers in planned.items()
        for server in servers
        if server not in current.get(key, ())
    ]
    unloads = [
        Step("unload", key, server)
        for key, servers in current.items()
        if key in planned
        for server in servers
        if server not in planned[key]
    ]
    return loads + unloads


def apply_placement(
    registry: Registry,
    target: FleetTarget,
    planned: Mapping[str, Sequence[str]],
    document: Mapping[str, Any],
    *,
    desired_of: Callable[[str], Desired],
    dry_run: bool = False,
    lock_wait_s: float = 600.0,
    reporter: Reporter = SILENT,
) -> Applied:
    """See the module docstring. ``desired_of(key)`` gives what to write for a version whose
    repository entry is missing."""
    records = registry.list_deployments()
    steps = plan_steps(planned, current_assignments(records, target.id))
    result = Applied(steps, dry_run=dry_run)
    if dry_run:
        return result
    with hold(registry, f"target:{target.id}", wait_s=lock_wait_s, reporter=reporter) as lease:
        servers = {server.name: server for server in target.servers()}
        serving = current_assignments(registry.list_deployments(), target.id)
        for step in steps:
            lease.check()
            model, _, number = step.key.partition("@")
            version = int(number)
            name = versioned_name(model, version)
            server = servers[step.server]
            now = list(serving.get(step.key, ()))
            if step.op == "load":
                if not now:  # no server has it yet: its repository entry first
                    target.repository.write(desired_of(step.key), name, reporter)
                with running(reporter, f"loading {name} on {server.name}"):
                    try:
                        server.client().load(name, timeout=target.fleet.load_timeout)
                    except MlopsError as exc:
                        raise PlacementApplyError(
                            f"{server.name} did not load {name}: {exc.message}; the steps "
                            "before it stand, nothing was unloaded",
                            hint="see the server's log; run `mlops placement apply` again",
                        ) from exc
                    if server.dynamic:  # it answered its warmup; loaded again on demand
                        server.client().unload(name)
                now.append(server.name)
            else:
                now.remove(server.name)
            serving[step.key] = tuple(now)
            _record(registry, target, model, version, name, now, records)
            if step.op == "unload":  # no longer named by the record: no request goes there
                with running(reporter, f"unloading {name} from {server.name}"):
                    server.client().unload(name)
            step.done = True
        stored = registry.put_placement(target.fleet.name, dict(document))
        result.revision = stored.revision
    return result


def _record(
    registry: Registry,
    target: FleetTarget,
    model: str,
    version: int,
    name: str,
    servers: Sequence[str],
    records: Sequence[DeploymentRecord],
) -> None:
    previous = next(
        (r for r in records if (r.model, r.version, r.target) == (model, version, target.id)),
        None,
    )
    by_name = {server.name: server for server in target.servers()}
    addresses = tuple(by_name[n].address() for n in servers if n in by_name)
    if previous is not None:
        detail = replace(TritonDetail.from_record(previous), servers=addresses)
    else:
        detail = TritonDetail(
            where="", triton_name=name, servers=addresses, repository=target.fleet.repository
        )
    detail = replace(detail, where=",".join(servers))
    registry.record_deployment(model, version, target.id, detail=detail.to_dict())
