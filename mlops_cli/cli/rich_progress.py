"""Rich implementations of the library's progress Reporter.

One rich ``Progress`` (one live display) shows every task of a command: a terminal has room for
one live display at a time, and rich before 14 raises ``LiveError`` when a second one starts
(``upload`` runs its hashing and upload tasks at once). Each task picks its columns by kind: a
spinner and elapsed time for waits, bytes, speed and ETA for transfers, a count for the rest.
"""

from __future__ import annotations

import threading

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Task as RichTaskState
from rich.text import Text

from mlops_cli.progress import Task

WAIT, BYTES, COUNT = "wait", "bytes", "count"


class _ForKinds(ProgressColumn):
    """Shows ``column`` for tasks of the given kinds, and nothing for the others."""

    def __init__(self, column: ProgressColumn, *kinds: str) -> None:
        super().__init__()
        self.column = column
        self.kinds = kinds

    def render(self, task: RichTaskState) -> RenderableType:
        if task.fields.get("kind") in self.kinds:
            return self.column(task)
        return Text("")


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self.progress = progress
        self.task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self.progress.advance(self.task_id, amount)

    def update(self, description: str) -> None:
        self.progress.update(self.task_id, description=description)


class RichReporter:
    """Spinner for tasks without a total; bytes, speed and ETA for byte transfers. Thread-safe.

    The live display starts with the first task and stops when the last open task closes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._open: dict[int, TaskID] = {}
        self._progress = Progress(
            _ForKinds(SpinnerColumn(), WAIT),
            TextColumn("{task.description}"),
            _ForKinds(BarColumn(), BYTES, COUNT),
            _ForKinds(DownloadColumn(), BYTES),
            _ForKinds(TextColumn("{task.completed}/{task.total} {task.fields[unit]}"), COUNT),
            _ForKinds(TransferSpeedColumn(), BYTES),
            _ForKinds(TimeElapsedColumn(), WAIT),
            _ForKinds(TimeRemainingColumn(), BYTES, COUNT),
            console=console,
            transient=True,
        )

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> Task:
        kind = WAIT if total is None else BYTES if unit == "bytes" else COUNT
        with self._lock:
            if not self._open:
                self._progress.start()
            task_id = self._progress.add_task(description, total=total, kind=kind, unit=unit)
            handle = _RichTask(self._progress, task_id)
            self._open[id(handle)] = task_id
        return handle

    def close(self, task: Task) -> None:
        with self._lock:
            task_id = self._open.pop(id(task), None)
            if task_id is None:
                return
            self._progress.remove_task(task_id)
            if not self._open:
                self._progress.stop()

    def note(self, message: str) -> None:
        self.console.print(message)


class NotesOnlyReporter:
    """No live display (stderr is not a terminal), but notes still go to stderr (--verbose)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> Task:
        self.console.print(f"{description} ...")
        from mlops_cli.progress import SilentReporter

        return SilentReporter().task(description)

    def close(self, task: Task) -> None:
        pass

    def note(self, message: str) -> None:
        self.console.print(message)
