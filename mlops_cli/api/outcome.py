"""How an api call ended, beside its result.

Most calls either return a result (exit code 0) or raise an :class:`~mlops_cli.errors.MlopsError`.
Some finish their work and still fail: validation found errors, a deployment drifted, an SLA was
not met, damaged blobs were left in the store. Their result is worth printing in full (it says
what failed), so they do not raise: the result carries an :class:`Outcome`, and the command line
turns it into the process exit code after printing the result, in its one exit path
(:mod:`mlops_cli.cli.main`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_cli.errors import EXIT_OK, MlopsError


@dataclass(frozen=True)
class Outcome:
    """An exit code, and the error to report after the result when there is one (its message
    and hint become the one ``error:`` line; its exit code wins)."""

    exit_code: int = EXIT_OK
    error: MlopsError | None = None

    @classmethod
    def failed(cls, error: MlopsError) -> Outcome:
        """The outcome of a finished call that ``error`` describes."""
        return cls(exit_code=error.exit_code, error=error)

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK


OK = Outcome()
