"""The one exception hierarchy of mlops.

Every error the library raises on purpose derives from :class:`MlopsError`. Each class carries the
process exit code the command line maps it to and an optional ``hint`` naming the next thing to
try; where a raise gives none, the command line prints the class's ``default_hint`` (``{command}``
is replaced by the command that failed, e.g. ``mlops models update``), so every error line has one. Backends translate their clients' exceptions (botocore, tritonclient, OS errors) into these
once, at their boundary, so callers never see a foreign exception type.
"""

from __future__ import annotations

# Exit codes shared by every command.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_INTERRUPTED = 130


class MlopsError(Exception):
    """Root of every error mlops raises on purpose; maps to exit code 1."""

    exit_code: int = EXIT_FAILED
    default_hint: str | None = "run again with MLOPS_DEBUG=1 for details"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(MlopsError, ValueError):
    """The command was called wrongly (bad flag value, missing argument); exit code 2."""

    exit_code = EXIT_USAGE
    default_hint = "see '{command} --help'"


class ValidationError(UsageError):
    """An input document (config, manifest, fleet file) does not validate; exit code 2.

    ``source`` names the file (or ``<env>`` / ``<flags>``) and ``key_path`` the dotted key inside it.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ": ".join(part for part in (source, key_path) if part)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.source = source
        self.key_path = key_path


class ConfigError(ValidationError):
    """The configuration (files, environment, flags) is invalid."""


class NotFoundError(MlopsError, LookupError):
    """A named thing (model, version, endpoint, server state) does not exist; exit code 1."""

    default_hint = "check the name: 'mlops models list' and 'mlops status' show what exists"


class ConflictError(MlopsError):
    """A concurrent change won a race, or the thing already exists; exit code 1."""

    default_hint = "read the current state again (it changed), then retry"


class NotSupportedError(MlopsError):
    """A backend was asked for a capability it does not declare; exit code 1."""

    default_hint = "pick another target; see '{command} --help'"


class ExtraNotInstalledError(MlopsError):
    """An optional dependency group is needed but not installed; exit code 1."""

    def __init__(self, *, feature: str, extra: str, distribution: str = "mlops-cli") -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra, which is not installed",
            hint=f"pip install '{distribution}[{extra}]'",
        )
        self.feature = feature
        self.extra = extra


class WorkspaceError(MlopsError):
    """The workspace directory cannot be created, read or written; exit code 1."""


class ServerError(MlopsError):
    """A managed server failed to start, answer or stop; exit code 1."""

    default_hint = "'mlops local status' shows the server and where its log is"


class PortInUseError(ServerError):
    """A configured port is already bound by another process."""

    def __init__(self, *, port: int, key: str) -> None:
        super().__init__(
            f"port {port} ({key}) is already in use on 127.0.0.1",
            hint=f"free the port, or set another with --set {key}=PORT (0 picks a free port)",
        )
        self.port = port
        self.key = key


class GateFailedError(MlopsError):
    """A gate or SLA was evaluated and not met; exit code 3."""

    exit_code = EXIT_GATE
    default_hint = None  # the report printed before it says which limits were missed
