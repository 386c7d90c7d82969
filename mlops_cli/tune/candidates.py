"""Candidates on a real Triton server: the :class:`~mlops_cli.tune.search.Bench` of ``mlops tune``.

The version is rendered once into the server's repository under a name of its own,
``<model>-v<version>-tune-<token>`` (never the ``<model>-v<version>`` of a deployment, and not a
name :func:`mlops_cli.triton.naming.parse_versioned_name` reads, so ``mlops status`` does not
mistake it for one). Each candidate is that entry loaded with its own model configuration as a
load-time override (Triton's ``load`` with a ``config`` parameter), built from the version's
ModelSpec with the candidate's values (:func:`mlops_cli.render.triton.model_config`): no
candidate is written to the repository, and what is deployed there is never touched. Each
candidate is measured by the perf engine (``run_perftest``: its warmup, windows and stability
rule) over HTTP. Leaving (also on an error or Ctrl-C) unloads the name and removes its entry.

The server is the workspace's local Triton (started when it is not running, as ``mlops deploy``
does) or one server of a fleet file. Measurements share the server with whatever it serves.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.tune.measurement import CandidateLoadError, Figures
from mlops_cli.tune.space import LoadPlan, ServingConfig

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.deploy.base import Desired
    from mlops_cli.deploy.repository import Repository
    from mlops_cli.perf.load_options import LoadOptions

DEFAULT_LOAD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class TuneServer:
    """The Triton server candidates run on, and the repository it loads from."""

    name: str  # "local", or the fleet's server name
    url: str  # HTTP base URL
    repository: Repository
    load_timeout: float = DEFAULT_LOAD_TIMEOUT_S
    gpu: bool = False
    # a check for a load the server never finishes (the local server reads its own log)
    failure_watch: Callable[[str], Callable[[], str | None]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "repository": self.repository.location}


def local_server(settings: Settings, *, reporter: Reporter = SILENT) -> TuneServer:
    """The workspace's local Triton, started when it is not running."""
    from mlops_cli.deploy.repository import Repository
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    manager = LocalTriton(Workspace(settings.workspace), settings.local, reporter=reporter)
    with running(reporter, "starting the local Triton"):
        manager.up()
    state = manager.read_state()
    if state is None:  # pragma: no cover - up() returns once the server answers
        raise MlopsError("the local Triton did not record its state after starting")
    return TuneServer(
        name="local",
        url=state.http_url,
        repository=Repository(state.model_repository),
        failure_watch=manager.load_failure_watch,
    )


def fleet_server(fleet: Path, server: str | None) -> TuneServer:
    """Server ``server`` of the fleet file (the only one when None and there is one)."""
    from mlops_cli.deploy.fleet_file import load_fleet
    from mlops_cli.deploy.repository import Repository

    spec = load_fleet(fleet)
    names = [s.name for s in spec.servers]
    if server is None:
        if len(spec.servers) > 1:
            raise UsageError(
                f"the fleet {spec.name} has {len(names)} servers: name the one to tune on",
                hint=f"--server {names[0]} (servers: {', '.join(names)})",
            )
        server = names[0]
    chosen = next((s for s in spec.servers if s.name == server), None)
    if chosen is None:
        from mlops_cli.validation import suggestion

        raise UsageError(
            f"the fleet {spec.name} ({fleet}) has no server {server!r}",
            hint=suggestion(server, names, noun="servers"),
        )
    return TuneServer(
        name=chosen.name,
        url=chosen.url,
        repository=Repository(spec.repository),
        load_timeout=spec.load_timeout,
        gpu=chosen.gpu_count > 0,
    )


def tune_name(model: str, version: int) -> str:
    """The name candidates of ``model`` v``version`` are loaded under (unique per run)."""
    return f"{model}-v{version}-tune-{secrets.token_hex(3)}"


def candidate_config_json(desired: Desired, config: ServingConfig, name: str) -> str:
    """The candidate's model configuration as the JSON Triton's load override takes."""
    from google.protobuf import json_format

    from mlops_cli.render.triton import model_config

    message = model_config(
        config.applied_to(desired.spec),
        model_name=name,
        device=desired.device,
        memory_mb=desired.memory_mb,
    )
    return str(json_format.MessageToJson(message, preserving_proto_field_name=True))


class TritonBench:
    """Candidates of one version on one server; a context manager that leaves nothing behind."""

    def __init__(
        self,
        *,
        server: TuneServer,
        desired: Desired,
        measure: LoadOptions,
        timeout_s: float = 30.0,
        reporter: Reporter = SILENT,
    ) -> None:
        from mlops_cli.triton.client import TritonClient

        self.server = server
        self.desired = desired
        self.measure_options = measure
        self.timeout_s = timeout_s
        self.reporter = reporter
        self.name = tune_name(desired.model, desired.version)
        self.client = TritonClient(server.url, name=server.name)

    def __enter__(self) -> TritonBench:
        with running(self.reporter, f"rendering {self.name} on {self.server.name}"):
            self.server.repository.write(self.desired, self.name, self.reporter)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unload the candidate and remove its entry; a failure here is a note, never an error
        (it must not hide the one that ended the search)."""
        try:
            self.client.unload(self.name, wait=10.0)
        except MlopsError as exc:
            self.reporter.note(f"{self.name} was not unloaded from {self.server.name}: {exc}")
        self.server.repository.remove_quietly(self.name, self.reporter)

    def load(self, config: ServingConfig) -> None:
        from mlops_cli.triton.client import TritonLoadError, TritonLoadHungError

        watch = self.server.failure_watch(self.name) if self.server.failure_watch else None
        text = candidate_config_json(self.desired, config, self.name)
        try:
            with running(self.reporter, f"loading {config.describe()}"):
                self.client.load(
                    self.name, timeout=self.server.load_timeout, failed=watch, config=text
                )
        except TritonLoadHungError as exc:
            raise CandidateLoadError(exc.reason, fatal=True) from None
        except TritonLoadError as exc:
            raise CandidateLoadError(exc.reason) from None

    def measure(self, config: ServingConfig, load: LoadPlan, level: float) -> Figures:
        from mlops_cli.perf.runner import run_perftest
        from mlops_cli.perf.targets import TargetSpec

        spec = TargetSpec(
            protocol="http",
            url=self.server.url,
            models=(self.name,),
            stream=self.desired.spec.streaming,
            timeout_s=self.timeout_s,
        )
        options = replace(self.measure_options, mode=load.mode, levels=(level,))
        try:
            with running(self.reporter, f"measuring {config.describe()} at {load.label(level)}"):
                document = run_perftest(spec, options)
        except MlopsError as exc:
            return Figures(failure=exc.message)
        steps = document["steps"]
        aborted = document.get("aborted")
        if not steps or (aborted is not None and not steps[0]["ok"]):
            reason = aborted["reason"] if aborted else "nothing was measured"
            return Figures(failure=reason)
        step = steps[0]
        return Figures(
            throughput_rps=float(step["throughput_rps"]),
            latency_ms=step["latency_ms"],
            error_rate=float(step["error_rate"]),
            stable=bool(step["stable"]),
            stream=step.get("stream"),
        )


__all__ = [
    "TritonBench",
    "TuneServer",
    "candidate_config_json",
    "fleet_server",
    "local_server",
    "tune_name",
]
