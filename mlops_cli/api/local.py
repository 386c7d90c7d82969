"""Library calls for the managed local servers: the embedded Triton (``local``) and mme-local
(the SageMaker multi-model endpoint stand-in), both under the workspace.

``local_up`` also loads again what the registry records as deployed on the local target (a
stopped server dropped it all); a reload that fails is reported in the result (exit 1), not
raised, so the server that did start is still described.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mlops_cli.api.outcome import OK, Outcome
from mlops_cli.errors import EXIT_FAILED, MlopsError
from mlops_cli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.deploy.local import LocalStart
    from mlops_cli.local import DownResult, LocalServerStatus, LocalTriton
    from mlops_cli.local.mme import LocalMME


def _triton(settings: Settings, reporter: Reporter) -> LocalTriton:
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    return LocalTriton(Workspace(settings.workspace), settings.local, reporter=reporter)


def _mme(settings: Settings, reporter: Reporter) -> LocalMME:
    from mlops_cli.local.mme import LocalMME
    from mlops_cli.workspace import Workspace

    return LocalMME(Workspace(settings.workspace), reporter=reporter)


@dataclass(frozen=True)
class LocalUp:
    """The started (or already running) server and the deployments loaded on it again."""

    start: LocalStart

    @property
    def outcome(self) -> Outcome:
        if not self.start.failed:
            return OK
        names = ", ".join(sorted(self.start.failed))
        return Outcome.failed(  # the one error line, also with --quiet and in --json
            MlopsError(
                f"the local Triton is up, but {len(self.start.failed)} deployment(s) were not "
                f"loaded again: {names}",
                hint="mlops local logs, then mlops deploy MODEL@VERSION",
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return self.start.to_dict()


def local_up(*, settings: Settings, reporter: Reporter = SILENT) -> LocalUp:
    """Start the local Triton (a no-op when it runs), wait until it is ready, and load again
    every version recorded as deployed on it. Reads the registry, never writes it."""
    from mlops_cli.deploy.local import start_and_reload
    from mlops_cli.registry import open_registry

    manager = _triton(settings, reporter)
    registry = open_registry(settings.registry)
    return LocalUp(start_and_reload(manager, registry, reporter=reporter))


def local_down(*, settings: Settings, reporter: Reporter = SILENT) -> DownResult:
    """Stop the local Triton and every backend process it started."""
    return _triton(settings, reporter).down()


@dataclass(frozen=True)
class LocalStatus:
    """The local Triton as observed now; exit 1 unless it runs."""

    status: LocalServerStatus

    @property
    def outcome(self) -> Outcome:
        return OK if self.status.state == "running" else Outcome(exit_code=EXIT_FAILED)

    def to_dict(self) -> dict[str, Any]:
        return self.status.to_dict()


def local_status(*, settings: Settings) -> LocalStatus:
    """Whether the local Triton runs, its addresses, memory and models."""
    return LocalStatus(_triton(settings, SILENT).status())


@dataclass(frozen=True)
class LocalLog:
    path: Path
    lines: list[str]  # the last lines, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {"log_path": str(self.path), "lines": self.lines}

    def follow(self, *, poll_s: float = 0.2) -> Iterator[str]:
        """``tail -f``: the lines appended to the log from now on (each with its newline), until
        the caller stops asking; nothing when there is no log. The end of the log is found
        here, at the call, so a line written after it is never missed."""
        if not self.path.is_file():
            return iter(())
        handle = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
        handle.seek(0, 2)
        return _appended_lines(handle, poll_s)


def _appended_lines(handle: TextIO, poll_s: float) -> Iterator[str]:
    with handle:
        while True:
            line = handle.readline()
            if line:
                yield line
            else:
                time.sleep(poll_s)


def local_log(*, settings: Settings, lines: int = 50) -> LocalLog:
    """The last ``lines`` lines of the local Triton's log."""
    manager = _triton(settings, SILENT)
    return LocalLog(manager.log_path, manager.log_lines(lines))


@dataclass(frozen=True)
class MmeUp:
    url: str
    pid: int
    already_running: bool

    def to_dict(self) -> dict[str, Any]:
        return {"already_running": self.already_running, "url": self.url, "pid": self.pid}


def mme_up(*, settings: Settings, reporter: Reporter = SILENT) -> MmeUp:
    """Start mme-local unless it runs (it runs its own containers: multi-model-server, and a
    Triton of its own for endpoints whose backend is triton)."""
    started = _mme(settings, reporter).up()
    return MmeUp(started.state.http_url, started.state.pid, started.already_running)


@dataclass(frozen=True)
class MmeDown:
    was_running: bool

    def to_dict(self) -> dict[str, Any]:
        return {"was_running": self.was_running}


def mme_down(*, settings: Settings, reporter: Reporter = SILENT) -> MmeDown:
    """Stop mme-local and its container processes."""
    return MmeDown(_mme(settings, reporter).down().was_running)


@dataclass(frozen=True)
class MmeStatus:
    """mme-local as observed now (the server's own status document); exit 1 unless it runs."""

    observed: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.observed["state"])

    @property
    def outcome(self) -> Outcome:
        return OK if self.state == "running" else Outcome(exit_code=EXIT_FAILED)

    def to_dict(self) -> dict[str, Any]:
        return self.observed


def mme_status(*, settings: Settings) -> MmeStatus:
    """Whether mme-local runs, and what it holds."""
    return MmeStatus(_mme(settings, SILENT).status().to_dict())
