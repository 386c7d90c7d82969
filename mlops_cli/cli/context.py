"""State shared by every command: global flags, the effective settings, output and progress.

A command ends with ``return cli.emit(result, human)``: the result is printed (one JSON document
with --json, else ``human``) and its outcome becomes the command's exit code; an outcome that
carries an error is raised as :class:`ReportedFailure`, which :mod:`mlops_cli.cli.main` (the one
exit path) reports as its one ``error:`` line without a second JSON document.

Output is never cut to fit: on a terminal rich lays it out for the terminal's width; into a pipe or
a file (where rich would assume 80 columns) nothing is wrapped, truncated or ellipsized, so that
paths and values reach scripts whole.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mlops_cli.cli.failure import ReportedFailure

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.config import Settings
    from mlops_cli.progress import Reporter


@runtime_checkable
class Reportable(Protocol):
    """A typed api result: its JSON document for --json."""

    def to_dict(self) -> Any: ...


UNBOUNDED_WIDTH = 1_000_000  # columns for a stream that is not a terminal: nothing is cut


def rich_console(*, stderr: bool = False) -> Console:
    """A rich Console for stdout (or stderr): the terminal's width on a terminal, else
    :data:`UNBOUNDED_WIDTH`."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else UNBOUNDED_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


@dataclass
class CliContext:
    """Global options of one invocation, and helpers that honour them."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False
    config_file: Path | None = None
    set_pairs: list[str] = field(default_factory=list)

    def settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        from mlops_cli.config import resolve_settings

        return resolve_settings(
            config_file=self.config_file, set_pairs=self.set_pairs, overrides=overrides
        )

    @property
    def stderr(self) -> Console:
        return rich_console(stderr=True)

    def reporter(self) -> Reporter:
        """Rich spinners and bars on stderr for a terminal; silent for --json, --quiet or pipes."""
        from mlops_cli.progress import SILENT

        if self.json or self.quiet or not sys.stderr.isatty():
            if self.verbose and not self.json:
                from mlops_cli.cli.rich_progress import NotesOnlyReporter

                return NotesOnlyReporter(self.stderr)
            return SILENT
        from mlops_cli.cli.rich_progress import RichReporter

        return RichReporter(self.stderr)

    def emit(self, result: object, human: Callable[[Console], None] | None = None) -> int:
        """Print the command's result (one JSON document with --json, else ``human`` on
        stdout) and return its exit code; an outcome with an error raises
        :class:`ReportedFailure` once the result is out."""
        if self.json:
            document = result.to_dict() if isinstance(result, Reportable) else result
            sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
            sys.stdout.flush()
        elif human is not None and not self.quiet:
            human(rich_console())
        from mlops_cli.api.outcome import Outcome

        outcome = getattr(result, "outcome", None)
        if not isinstance(outcome, Outcome):
            return 0
        if outcome.error is not None:
            raise ReportedFailure(outcome.error)
        return outcome.exit_code

    def warn(self, message: str) -> None:
        """A warning on stderr (hidden only by --quiet; --json keeps stdout for the result)."""
        if not self.quiet:
            self.stderr.print(f"warning: {message}")

    def info(self, message: str) -> None:
        """A note for the user on stderr (hidden by --quiet and --json)."""
        if not (self.quiet or self.json):
            self.stderr.print(message)
