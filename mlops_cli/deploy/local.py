"""The ``local`` target: the workspace's embedded Triton, a fleet of one CPU server.

Deploying starts the server when it is not running; its repository is the workspace's.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mlops_cli.config import Settings
from mlops_cli.deploy.base import Action, DeploymentStatus, Desired, Plan
from mlops_cli.deploy.fleet import DEFAULT_LOAD_TIMEOUT, Fleet, FleetServer, TritonTarget
from mlops_cli.local import LocalTriton
from mlops_cli.progress import SILENT, Reporter
from mlops_cli.workspace import Workspace

SERVER_NAME = "local"


class LocalTarget(TritonTarget):
    kind = "local"

    def __init__(self, manager: LocalTriton) -> None:
        self.manager = manager
        super().__init__(self._fleet(), target_id="local")

    @classmethod
    def from_settings(cls, settings: Settings, *, reporter: Reporter = SILENT) -> LocalTarget:
        return cls(LocalTriton(Workspace(settings.workspace), settings.local, reporter=reporter))

    def _fleet(self) -> Fleet:
        state = self.manager.read_state()
        url = state.http_url if state else "http://127.0.0.1:0"
        grpc = f"127.0.0.1:{state.grpc_port}" if state else ""
        server = FleetServer(name=SERVER_NAME, url=url, grpc_url=grpc, memory_mb=float("inf"))
        return Fleet(
            name=SERVER_NAME,
            repository=str(self.manager.model_repository),
            servers=(server,),
            load_timeout=DEFAULT_LOAD_TIMEOUT,
        )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One deploy or undeploy at a time on the workspace's server (a lock file beside the
        server's own, which `up` takes inside a deploy)."""
        directory = self.manager.workspace.ensure_dir(self.manager.dir)
        with open(directory / ".deploy.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def running(self) -> bool:
        return self.manager.status().state == "running"

    def plan(self, desired: Desired, records: Sequence[Mapping[str, Any]]) -> Plan:
        if self.running():
            self.fleet = self._fleet()
            return super().plan(desired, records)
        plan = Plan(target=self.id, model=desired.model, version=desired.version)
        plan.actions.append(Action("start", "local Triton", where=SERVER_NAME))
        plan.actions.append(Action("load", desired.model, desired.version, SERVER_NAME, "CPU"))
        plan.state.update(start=True, desired=desired, records=list(records))
        return plan

    def apply(self, plan: Plan, *, reporter: Reporter = SILENT) -> dict[str, Any]:
        if plan.state.get("start"):
            self.manager.up()
            self.fleet = self._fleet()
            plan = super().plan(plan.state["desired"], plan.state["records"])
        return super().apply(plan, reporter=reporter)

    def retire(
        self, model: str, version: int, detail: Mapping[str, Any], *, reporter: Reporter = SILENT
    ) -> None:
        if not self.running():
            self.repository.remove(str(detail.get("triton_name", "")) or f"{model}-v{version}")
            return
        self.fleet = self._fleet()
        super().retire(model, version, detail, reporter=reporter)

    def status(self, records: Sequence[Mapping[str, Any]]) -> list[DeploymentStatus]:
        observed = self.manager.status()
        if observed.state != "running":
            note = observed.note or f"local Triton is {observed.state}"
            return [
                DeploymentStatus(
                    model=str(r["model"]),
                    version=int(r["version"]),
                    target=self.id,
                    where=SERVER_NAME,
                    state="DRIFT",
                    note=f"recorded as deployed, but {note}",
                )
                for r in records
            ]
        self.fleet = self._fleet()
        found = super().status(records)
        rss = {m.name: m.rss_bytes for m in observed.models}
        # the local server also knows each model's backend process and its resident memory
        return [
            replace(item, detail={**item.detail, "rss_mb": round(rss[name] / 2**20, 1)})
            if (name := f"{item.model}-v{item.version}") in rss and rss[name]
            else item
            for item in found
        ]


__all__ = ["LocalTarget"]
