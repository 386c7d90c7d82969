"""The one exception a command raises after its result is printed (kept apart from
:mod:`mlops_cli.cli.context` so that ``mlops --version`` imports nothing else)."""

from __future__ import annotations

from mlops_cli.errors import MlopsError


class ReportedFailure(Exception):
    """A command's result is printed, and its outcome is ``error``: ``main`` prints the error's
    line on stderr (stdout already holds the result) and exits with its code."""

    def __init__(self, error: MlopsError) -> None:
        super().__init__(error.message)
        self.error = error
