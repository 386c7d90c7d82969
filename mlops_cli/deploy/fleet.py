"""Triton targets: a fleet of servers sharing one model repository (and, as a fleet of one, the
embedded local server).

The repository is a folder every server reads (a shared path) or an ``s3://bucket/prefix`` the
servers were started on. Deploying a version writes ``<repository>/<model>-v<version>/`` and loads
it, in explicit model-control mode, on the servers a first-fit-by-memory placement picks. What a
server serves is read from the server itself (repository index, and the memory each loaded model's
config carries), never assumed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_cli.aws.s3 import S3Location, S3Prefix
from mlops_cli.deploy.base import (
    Action,
    Capabilities,
    Chunk,
    DeploymentStatus,
    DeployTarget,
    Desired,
    InvokeRequest,
    Plan,
)
from mlops_cli.deploy.triton import invoke_triton, recorded_memory_mb, usage, warmup_requests
from mlops_cli.errors import MlopsError, UsageError, ValidationError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.triton.client import (
    RepositoryEntry,
    ServerUnreachableError,
    TritonClient,
    TritonLoadHungError,
)
from mlops_cli.triton.naming import parse_versioned_name, versioned_name
from mlops_cli.validation import read_yaml_file, validate_document

DEFAULT_LOAD_TIMEOUT = 300.0


class FleetFileError(ValidationError):
    """A fleet file that is not valid."""


class CapacityError(MlopsError):
    """No server can take the model."""


@dataclass(frozen=True)
class FleetServer:
    name: str
    url: str
    grpc_url: str = ""
    memory_mb: float = 0.0
    gpu_kind: str | None = None
    gpu_count: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)

    def client(self) -> TritonClient:
        return TritonClient(self.url, name=self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "grpc_url": self.grpc_url}


@dataclass(frozen=True)
class Fleet:
    name: str
    repository: str  # a folder path, or s3://bucket/prefix
    servers: tuple[FleetServer, ...]
    load_timeout: float = DEFAULT_LOAD_TIMEOUT


def load_fleet(path: Path) -> Fleet:
    """Read and validate a fleet file (``schemas/fleet.schema.json``)."""
    missing = FleetFileError(f"fleet file {path} does not exist")
    data = read_yaml_file(path, error_class=FleetFileError, missing=missing) or {}
    validate_document(data, "fleet", source=str(path), error_class=FleetFileError)
    servers = []
    for index, entry in enumerate(data["servers"]):
        gpu = entry.get("gpu") or {}
        servers.append(
            FleetServer(
                name=entry.get("name") or f"server-{index}",
                url=entry["url"].rstrip("/"),
                grpc_url=entry.get("grpc_url", ""),
                memory_mb=float(entry["memory_mb"]),
                gpu_kind=gpu.get("kind"),
                gpu_count=int(gpu.get("count", 1)) if gpu else 0,
                labels=dict(entry.get("labels", {})),
            )
        )
    names = [s.name for s in servers]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise FleetFileError(f"server name {duplicate!r} appears twice", source=str(path))
    repository = str(data["repository"])
    if repository.startswith("s3://"):
        try:
            repository = S3Location.parse(repository).uri
        except UsageError as exc:
            raise FleetFileError(exc.message, source=str(path), key_path="repository") from None
    else:
        repository = str((path.parent / repository).resolve())
    return Fleet(
        name=data["name"],
        repository=repository,
        servers=tuple(servers),
        load_timeout=float(data.get("load_timeout", DEFAULT_LOAD_TIMEOUT)),
    )


def fleet_from_records(name: str, records: Sequence[Mapping[str, Any]]) -> Fleet:
    """The part of a fleet that deployment records describe (enough to observe them)."""
    servers: dict[str, FleetServer] = {}
    repository = ""
    for record in records:
        detail = record.get("detail") or {}
        repository = repository or str(detail.get("repository", ""))
        for entry in detail.get("servers") or []:
            servers.setdefault(
                str(entry["name"]),
                FleetServer(
                    name=str(entry["name"]),
                    url=str(entry["url"]),
                    grpc_url=str(entry.get("grpc_url", "")),
                ),
            )
    return Fleet(name=name, repository=repository, servers=tuple(servers.values()))


# -- the repository --------------------------------------------------------------------------


class Repository:
    """Where rendered models are written: a folder, or an S3 prefix (``s3://bucket/prefix``).

    S3 goes through :class:`mlops_cli.aws.S3Prefix`, so an S3 failure is one translated line
    (a missing bucket, refused credentials), never a botocore exception."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._prefix = S3Prefix(location) if location.startswith("s3://") else None

    def write(self, desired: Desired, name: str, reporter: Reporter) -> None:
        """Render ``desired`` as the entry ``name``. On failure nothing of the entry is left
        (the error raised is the failure's own, whatever the clean-up meets)."""
        from mlops_cli.render.triton import render_triton

        def render(into: Path) -> None:
            render_triton(
                desired.store,
                desired.manifest,
                into,
                model_name=name,
                version=1,
                device=desired.device,
                memory_mb=desired.memory_mb,
                reporter=reporter,
            )

        if self._prefix is None:
            model_dir = Path(self.location) / name
            if model_dir.exists():
                shutil.rmtree(model_dir)  # a leftover of a failed attempt: write it anew
            try:
                render(Path(self.location))
            except BaseException:
                shutil.rmtree(model_dir, ignore_errors=True)
                raise
            return
        with tempfile.TemporaryDirectory(prefix="mlops-render-") as tmp:
            render(Path(tmp))
            self._prefix.delete_folder(name)  # a leftover of a failed attempt: write it anew
            entry = Path(tmp) / name
            try:
                for file in sorted(p for p in entry.rglob("*") if p.is_file()):
                    self._prefix.put_file(f"{name}/{file.relative_to(entry).as_posix()}", file)
            except BaseException:
                self.remove_quietly(name, reporter)
                raise

    def remove(self, name: str) -> None:
        if self._prefix is None:
            shutil.rmtree(Path(self.location) / name, ignore_errors=True)
            return
        self._prefix.delete_folder(name)

    def remove_quietly(self, name: str, reporter: Reporter = SILENT) -> None:
        """:meth:`remove` while another error is on its way: a failure here must not hide it,
        so it is only a note."""
        try:
            self.remove(name)
        except Exception as exc:  # the caller re-raises the error that matters
            reason = exc.message if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
            reporter.note(f"{name} was not removed from {self.location}: {reason}")


# -- the target -------------------------------------------------------------------------------


class TritonTarget(DeployTarget):
    """Triton servers sharing a repository, explicit model control."""

    kind = "triton"

    def __init__(self, fleet: Fleet, *, target_id: str | None = None) -> None:
        self.fleet = fleet
        self.id = target_id or f"triton:{fleet.name}"
        self.repository = Repository(fleet.repository)
        self.capabilities = Capabilities(
            streaming=True,
            multi_model=True,
            explicit_load=True,
            gpu=any(s.gpu_count > 0 for s in fleet.servers),
        )

    # -- observing ---------------------------------------------------------------------------

    def servers(self) -> Sequence[FleetServer]:
        return self.fleet.servers

    def _observe(self) -> dict[str, set[str] | None]:
        """Server name -> the models it has READY (None: unreachable)."""
        seen: dict[str, set[str] | None] = {}
        for server in self.servers():
            try:
                seen[server.name] = server.client().ready_models()
            except ServerUnreachableError:
                seen[server.name] = None
        return seen

    def _place(self, desired: Desired, seen: Mapping[str, set[str] | None]) -> FleetServer:
        """First fit by memory among the servers that can run the model."""
        reasons = []
        for server in self.servers():
            loaded = seen.get(server.name)
            if loaded is None:
                reasons.append(f"{server.name}: unreachable")
                continue
            if desired.device == "gpu":
                wanted = desired.spec.resources.gpu.kind if desired.spec.resources.gpu else None
                if server.gpu_count == 0 or (wanted and server.gpu_kind != wanted):
                    reasons.append(f"{server.name}: no {wanted or 'GPU'}")
                    continue
            client = server.client()
            used = sum(recorded_memory_mb(client.model_config(name)) for name in loaded)
            free = server.memory_mb - used
            if free >= desired.memory_mb:
                return server
            reasons.append(f"{server.name}: {free:g} MB free")
        raise CapacityError(
            f"no server can take {desired.model} v{desired.version} "
            f"({desired.memory_mb:g} MB): {'; '.join(reasons) or 'the fleet has no servers'}",
            hint="add capacity to the fleet file, undeploy something, or profile the model",
        )

    def _load_failure(self, name: str) -> Callable[[], str | None] | None:
        """A check that ends a load Triton itself never ends (see ``TritonClient.load``); the
        servers of a fleet keep their logs to themselves, so none here."""
        return None

    # -- the contract -------------------------------------------------------------------------

    def plan(self, desired: Desired, records: Sequence[Mapping[str, Any]]) -> Plan:
        name = versioned_name(desired.model, desired.version)
        plan = Plan(target=self.id, model=desired.model, version=desired.version)
        plan.state["name"] = name
        seen = self._observe()
        serving = [s for s in self.servers() if name in (seen.get(s.name) or set())]
        recorded = any(int(r["version"]) == desired.version for r in records)
        if serving:
            op = "keep" if recorded else "adopt"
            for server in serving:
                plan.actions.append(Action(op, desired.model, desired.version, server.name))
            plan.state.update(servers=[s.name for s in serving], load=False)
            return plan
        server = self._place(desired, seen)
        plan.actions.append(
            Action(
                "load",
                desired.model,
                desired.version,
                server.name,
                f"{desired.device.upper()}, {desired.memory_mb:g} MB, as {name}",
            )
        )
        plan.state.update(servers=[server.name], load=True, desired=desired)
        return plan

    def _detail(self, plan: Plan) -> dict[str, Any]:
        chosen = [s for s in self.servers() if s.name in plan.state["servers"]]
        desired: Desired | None = plan.state.get("desired")
        return {
            "where": ",".join(s.name for s in chosen),
            "triton_name": plan.state["name"],
            "servers": [s.to_dict() for s in chosen],
            "repository": self.fleet.repository,
            **({"device": desired.device, "memory_mb": desired.memory_mb} if desired else {}),
        }

    def apply(self, plan: Plan, *, reporter: Reporter = SILENT) -> dict[str, Any]:
        if not plan.state.get("load"):
            return self._detail(plan)
        desired: Desired = plan.state["desired"]
        name = plan.state["name"]
        chosen = [s for s in self.servers() if s.name in plan.state["servers"]]
        self.repository.write(desired, name, reporter)
        try:
            for server in chosen:
                with running(reporter, f"loading {name} on {server.name}"):
                    server.client().load(
                        name, timeout=self.fleet.load_timeout, failed=self._load_failure(name)
                    )
        except BaseException as exc:
            # Leave the fleet as it was: a failed model stays listed on Triton until unloaded
            # (a hung load answers no unload). The clean-up is best effort: the load's own
            # error is the one to report.
            for server in chosen if not isinstance(exc, TritonLoadHungError) else ():
                with contextlib.suppress(Exception):
                    server.client().unload(name, wait=5.0)
            self.repository.remove_quietly(name, reporter)
            raise
        return self._detail(plan)

    def retire(
        self, model: str, version: int, detail: Mapping[str, Any], *, reporter: Reporter = SILENT
    ) -> None:
        name = str(detail.get("triton_name") or versioned_name(model, version))
        wanted = {str(s.get("name")) for s in detail.get("servers", [])}
        for server in self.servers():
            if wanted and server.name not in wanted:
                continue
            with running(reporter, f"unloading {name} from {server.name}"):
                try:
                    server.client().unload(name)
                except ServerUnreachableError:
                    reporter.note(f"{server.name} is unreachable; {name} was not unloaded there")
        self.repository.remove(name)

    def status(self, records: Sequence[Mapping[str, Any]]) -> list[DeploymentStatus]:
        found: list[DeploymentStatus] = []
        covered: set[tuple[str, str]] = set()
        observed: dict[str, tuple[dict[str, RepositoryEntry], str | None]] = {}
        for server in self.servers():
            try:
                index = {e.name: e for e in server.client().index()}
                observed[server.name] = (index, None)
            except ServerUnreachableError as exc:
                observed[server.name] = ({}, str(exc))
        for record in records:
            model, version = str(record["model"]), int(record["version"])
            detail = record.get("detail") or {}
            name = str(detail.get("triton_name") or versioned_name(model, version))
            for entry in detail.get("servers") or [{"name": self.servers()[0].name}]:
                server_name = str(entry.get("name"))
                covered.add((server_name, name))
                index, problem = observed.get(server_name, ({}, "not in the fleet any more"))
                found.append(
                    self._observed_status(model, version, server_name, name, index, problem)
                )
        for server_name, (index, _) in observed.items():
            for name, entry in index.items():
                parsed = parse_versioned_name(name)
                if parsed and entry.state == "READY" and (server_name, name) not in covered:
                    found.append(
                        DeploymentStatus(
                            model=parsed[0],
                            version=parsed[1],
                            target=self.id,
                            where=server_name,
                            state="DRIFT",
                            note="served, but not recorded in the registry",
                        )
                    )
        return found

    def _observed_status(
        self,
        model: str,
        version: int,
        server_name: str,
        name: str,
        index: Mapping[str, RepositoryEntry],
        problem: str | None,
    ) -> DeploymentStatus:
        common: dict[str, Any] = {
            "model": model,
            "version": version,
            "target": self.id,
            "where": server_name,
        }
        if problem is not None:
            return DeploymentStatus(state="UNAVAILABLE", note=problem, **common)
        entry = index.get(name)
        if entry is None or entry.state != "READY":
            state = (entry.state if entry else "") or "absent"
            reason = f": {entry.reason}" if entry and entry.reason else ""
            return DeploymentStatus(
                state="DRIFT",
                note=f"recorded as deployed, but {state} on the server{reason}",
                **common,
            )
        client = next(s for s in self.servers() if s.name == server_name).client()
        warmup = warmup_requests(client.model_config(name))
        requests, failures, latency = usage(client.statistics(name), warmup=warmup)
        return DeploymentStatus(
            state="READY", requests=requests, failures=failures, latency_ms=latency, **common
        )

    def invoke(
        self, model: str, version: int, detail: Mapping[str, Any], request: InvokeRequest
    ) -> Iterator[Chunk]:
        return invoke_triton(model, version, detail, request)


class FleetTarget(TritonTarget):
    """The ``triton`` target: the servers a fleet file lists."""


__all__ = [
    "CapacityError",
    "Fleet",
    "FleetFileError",
    "FleetServer",
    "FleetTarget",
    "load_fleet",
]
