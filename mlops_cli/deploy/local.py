"""The ``local`` target: the workspace's embedded Triton, a fleet of one CPU server.

Deploying starts the server when it is not running; its repository is the workspace's. The
server's address is never taken from a deployment record: it changes with every start, so
:class:`LocalDetail` reads it from the server's state file when a recorded deployment is used, and
:func:`start_and_reload` (``mlops local up``) loads again every version the registry records as
deployed here, which a stopped server had dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.config import Settings
from mlops_cli.deploy.base import Action, DeploymentRecord, DeploymentStatus, Desired
from mlops_cli.deploy.fleet import TritonPlan, TritonTarget
from mlops_cli.deploy.fleet_file import DEFAULT_LOAD_TIMEOUT, Fleet, FleetServer
from mlops_cli.deploy.triton import ServerAddress, TritonDetail
from mlops_cli.errors import MlopsError, ServerError
from mlops_cli.local import LocalServerStatus, LocalTriton
from mlops_cli.local.server import TritonState, running_server
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.triton.naming import versioned_name
from mlops_cli.workspace import Workspace

if TYPE_CHECKING:
    from mlops_cli.registry.base import Registry

SERVER_NAME = "local"
TARGET_ID = "local"


def _server(state: TritonState | None) -> FleetServer:
    url = state.http_url if state else "http://127.0.0.1:0"
    grpc = f"127.0.0.1:{state.grpc_port}" if state else ""
    return FleetServer(name=SERVER_NAME, url=url, grpc_url=grpc, memory_mb=float("inf"))


@dataclass(frozen=True)
class LocalDetail(TritonDetail):
    """A local deployment: a Triton detail, plus the workspace folder of the server it was
    loaded on. The address in ``servers`` is what it was at deploy time; :meth:`serving`
    finds the server that runs there now."""

    local_dir: str = ""

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "local_dir": self.local_dir}

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> LocalDetail:
        return cls(
            **TritonDetail.fields_of(record), local_dir=str(record.detail.get("local_dir") or "")
        )

    def serving(self, model: str, version: int) -> ServerAddress:
        """The local server running now in the deployment's workspace (found through its state
        file). ServerError when none runs there."""
        local_dir = self.local_dir or Path(self.repository).parent
        state = running_server(Path(local_dir))
        if state is None:
            raise ServerError(
                "the local Triton is not running",
                hint="start it with `mlops local up`; it loads what is deployed there again",
            )
        return _server(state).address()


@dataclass(frozen=True)
class LocalStart:
    """What ``mlops local up`` did: the server, and the recorded deployments it loaded again."""

    already_running: bool
    status: LocalServerStatus  # observed after the reloads
    reloaded: list[str] = field(default_factory=list)  # Triton names loaded again
    failed: dict[str, str] = field(default_factory=dict)  # Triton name (or "registry") -> why

    def to_dict(self) -> dict[str, Any]:
        return {
            "already_running": self.already_running,
            **self.status.to_dict(),
            "reloaded": self.reloaded,
            "reload_failed": [{"name": n, "reason": r} for n, r in self.failed.items()],
        }


def start_and_reload(
    manager: LocalTriton, registry: Registry, *, reporter: Reporter = SILENT
) -> LocalStart:
    """Start the local server unless it runs, then load every version the registry records as
    deployed on the local target that the server does not have READY (a stopped server dropped
    them all). Reads the registry, never writes it; a failed reload is reported, not raised."""
    up = manager.up()
    try:
        records = [r for r in registry.list_deployments() if r.target == TARGET_ID]
    except MlopsError as exc:
        return LocalStart(up.already_running, up.status, failed={"registry": exc.message})
    if not records:
        return LocalStart(up.already_running, up.status)
    reloaded, failed = LocalTarget(manager).reload(records, reporter=reporter)
    status = manager.status() if reloaded else up.status
    return LocalStart(up.already_running, status, reloaded, failed)


class LocalTarget(TritonTarget):
    kind = "local"

    def __init__(self, manager: LocalTriton) -> None:
        self.manager = manager
        super().__init__(self._fleet(), target_id=TARGET_ID)

    @classmethod
    def from_settings(cls, settings: Settings, *, reporter: Reporter = SILENT) -> LocalTarget:
        return cls(LocalTriton(Workspace(settings.workspace), settings.local, reporter=reporter))

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
        reporter: Reporter = SILENT,
    ) -> LocalTarget:
        return cls.from_settings(settings, reporter=reporter)

    @classmethod
    def from_records(
        cls,
        settings: Settings,
        target_id: str,
        records: Sequence[DeploymentRecord],
        *,
        fleet: Path | None = None,
        endpoint: Path | None = None,
    ) -> LocalTarget:
        """The workspace's server (its records name no other)."""
        return cls.from_settings(settings)

    @classmethod
    def parse_detail(cls, record: DeploymentRecord) -> LocalDetail:
        return LocalDetail.from_record(record)

    def _fleet(self) -> Fleet:
        return Fleet(
            name=SERVER_NAME,
            repository=str(self.manager.model_repository),
            servers=(_server(self.manager.read_state()),),
            load_timeout=DEFAULT_LOAD_TIMEOUT,
        )

    def _load_failure(self, name: str) -> Callable[[], str | None] | None:
        return self.manager.load_failure_watch(name)

    def _detail(self, plan: TritonPlan) -> LocalDetail:
        # the address in ``servers`` is what it was at deploy time; users of the record go
        # through LocalDetail.serving, which finds the server through ``local_dir``
        placed = super()._detail(plan)
        return LocalDetail(**vars(placed), local_dir=str(self.manager.dir))

    def reload(
        self, records: Sequence[DeploymentRecord], *, reporter: Reporter = SILENT
    ) -> tuple[list[str], dict[str, str]]:
        """Load the recorded versions the running server does not have READY, from the entries
        still in the repository. Returns (names loaded, {name: why not})."""
        self.fleet = self._fleet()
        client = self.servers()[0].client()
        ready = client.ready_models()
        reloaded: list[str] = []
        failed: dict[str, str] = {}
        for record in records:
            name = self.parse_detail(record).triton_name
            if name in ready:
                continue
            if not (Path(str(self.manager.model_repository)) / name).is_dir():
                failed[name] = "its repository entry is gone; deploy it again"
                continue
            with running(reporter, f"reloading {name}"):
                try:
                    client.load(
                        name, timeout=self.fleet.load_timeout, failed=self._load_failure(name)
                    )
                except MlopsError as exc:
                    failed[name] = exc.message
                    continue
            reloaded.append(name)
        return reloaded, failed

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

    def plan(self, desired: Desired, records: Sequence[DeploymentRecord]) -> TritonPlan:
        if self.running():
            self.fleet = self._fleet()
            return super().plan(desired, records)
        name = versioned_name(desired.model, desired.version)
        plan = TritonPlan(self.id, desired.model, desired.version, name=name)
        plan.actions.append(Action("start", "local Triton", where=SERVER_NAME))
        plan.actions.append(Action("load", desired.model, desired.version, SERVER_NAME, "CPU"))
        plan.start, plan.desired, plan.records = True, desired, tuple(records)
        return plan

    def apply(self, plan: TritonPlan, *, reporter: Reporter = SILENT) -> LocalDetail:
        if plan.start and plan.desired is not None:
            self.manager.up()
            self.fleet = self._fleet()
            plan = super().plan(plan.desired, plan.records)
        detail = super().apply(plan, reporter=reporter)
        assert isinstance(detail, LocalDetail)  # _detail makes one
        return detail

    def retire(
        self, model: str, version: int, detail: TritonDetail, *, reporter: Reporter = SILENT
    ) -> None:
        if not self.running():
            self.repository.remove(detail.triton_name or versioned_name(model, version))
            return
        self.fleet = self._fleet()
        super().retire(model, version, detail, reporter=reporter)

    def status(self, records: Sequence[DeploymentRecord]) -> list[DeploymentStatus]:
        observed = self.manager.status()
        if observed.state != "running":
            note = observed.note or f"local Triton is {observed.state}"
            return [
                DeploymentStatus(
                    model=r.model,
                    version=r.version,
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
            if (name := versioned_name(item.model, item.version)) in rss and rss[name]
            else item
            for item in found
        ]


__all__ = ["LocalDetail", "LocalStart", "LocalTarget", "start_and_reload"]
