"""Rich implementations of the library's progress Reporter."""

from __future__ import annotations

from rich.console import Console
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

from mlops_cli.progress import Task


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self.progress = progress
        self.task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self.progress.advance(self.task_id, amount)

    def update(self, description: str) -> None:
        self.progress.update(self.task_id, description=description)


class RichReporter:
    """Spinner for tasks without a total; bytes, speed and ETA for byte transfers."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: dict[int, Progress] = {}

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> Task:
        columns: tuple[ProgressColumn | str, ...]
        if total is None:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        elif unit == "bytes":
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
        else:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} " + unit),
                TimeRemainingColumn(),
            )
        progress = Progress(*columns, console=self.console, transient=True)
        progress.start()
        handle = _RichTask(progress, progress.add_task(description, total=total))
        self._live[id(handle)] = progress
        return handle

    def close(self, task: Task) -> None:
        progress = self._live.pop(id(task), None)
        if progress is not None:
            progress.stop()

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
