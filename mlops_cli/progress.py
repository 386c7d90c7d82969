"""Progress reporting, injected into library code.

Library functions take a :class:`Reporter` and never print. The command line plugs in a rich
implementation (spinners for waits, bars with bytes, speed and ETA for transfers); library users
and ``--json``/``--quiet`` runs get :data:`SILENT`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Task(Protocol):
    """One unit of work in progress."""

    def advance(self, amount: int = 1) -> None:
        """Record ``amount`` more units done (bytes, files, requests)."""

    def update(self, description: str) -> None:
        """Change the text shown for this task."""


class Reporter(Protocol):
    """Where library code sends progress and notes."""

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> Task:
        """Start a task; ``total=None`` shows a spinner, a number shows a bar. Call ``close``."""

    def close(self, task: Task) -> None:
        """Finish a task started with :meth:`task`."""

    def note(self, message: str) -> None:
        """A short line for the user (a warning, a step done)."""


class _SilentTask:
    def advance(self, amount: int = 1) -> None:
        pass

    def update(self, description: str) -> None:
        pass


class SilentReporter:
    """Reports nothing. The default for library calls."""

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> Task:
        return _SilentTask()

    def close(self, task: Task) -> None:
        pass

    def note(self, message: str) -> None:
        pass


SILENT: Reporter = SilentReporter()


@contextmanager
def running(
    reporter: Reporter, description: str, *, total: int | None = None, unit: str = ""
) -> Iterator[Task]:
    """``with running(reporter, "waiting for server") as task:`` - a task closed on exit."""
    task = reporter.task(description, total=total, unit=unit)
    try:
        yield task
    finally:
        reporter.close(task)
