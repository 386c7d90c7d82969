"""Entry point: run the Typer app and turn every outcome into one exit code.

Exit codes: 0 ok, 1 failed, 2 usage or validation, 3 gate or SLA not met, 130 interrupted.
This is the one exit path: a command returns its result's exit code (``cli.emit``) or raises; no
command module exits on its own.
Known errors print one line with a hint on stderr (the error's own hint, else its class's default);
with --json an ``{"error": ...}`` document also goes to stdout so that machines always get exactly
one JSON document. Ctrl-C prints ``interrupted`` (and, with --json, an error document of type
``Interrupted``). A botocore exception that escaped its backend is translated here as a last
resort. ``MLOPS_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from mlops_cli.cli.failure import ReportedFailure
from mlops_cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, MlopsError

GLOBAL_FLAGS = frozenset({"--json", "--quiet", "-q", "--verbose", "-v"})
GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--config", "--set"})


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """Move global options given after a subcommand to the front, so that both
    ``mlops --json local status`` and ``mlops local status --json`` work."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif name in GLOBAL_OPTIONS_WITH_VALUE and ("=" in arg or index + 1 < len(argv)):
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(argv[index : index + 2])
                index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


def _report(message: str, hint: str | None, *, exit_code: int, kind: str, as_json: bool) -> int:
    line = f"error: {message}"
    if hint:
        line += f" (hint: {hint})"
    print(line, file=sys.stderr)
    _json_error(message, hint, exit_code=exit_code, kind=kind, as_json=as_json)
    return exit_code


def _json_error(
    message: str, hint: str | None, *, exit_code: int, kind: str, as_json: bool
) -> None:
    if as_json:
        import json

        document = {
            "error": {"type": kind, "message": message, "hint": hint, "exit_code": exit_code}
        }
        print(json.dumps(document, indent=2))


def _interrupted(*, as_json: bool) -> int:
    """Ctrl-C: one line on stderr (and the one JSON document with --json); exit 130."""
    try:
        print("interrupted", file=sys.stderr)
        _json_error(
            "interrupted", None, exit_code=EXIT_INTERRUPTED, kind="Interrupted", as_json=as_json
        )
    except KeyboardInterrupt:  # a second Ctrl-C while reporting the first
        pass
    return EXIT_INTERRUPTED


def _command_path(args: Sequence[str]) -> str:
    """``mlops`` and the command and subcommand names in ``args`` (for a --help hint)."""
    words = ["mlops"]
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif arg.startswith("-") or len(words) == 3:
            break
        else:
            words.append(arg)
    return " ".join(words)


def _translate_foreign(exc: Exception) -> MlopsError | None:
    """A botocore exception that escaped its backend (a safety net: backends translate their
    own), as the mlops error it means; None for anything else."""
    if not type(exc).__module__.startswith("botocore."):
        return None
    from mlops_cli.aws import translate

    return translate(exc, what="AWS")


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mlops`` with ``argv`` (default: the process arguments); return the exit code."""
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    if args == ["--version"]:  # answered without importing the command line framework
        from mlops_cli import __version__

        print(f"mlops {__version__}")
        return 0
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    debug = os.environ.get("MLOPS_DEBUG", "") not in ("", "0")
    try:
        from mlops_cli.cli.app import run

        return run(args)
    except MlopsError as exc:
        return _report_known(exc, args, debug=debug, as_json=as_json)
    except ReportedFailure as failure:  # the result is already on stdout: the error line alone
        return _report_known(failure.error, args, debug=debug, as_json=False)
    except KeyboardInterrupt:
        return _interrupted(as_json=as_json)
    except Exception as exc:
        from mlops_cli.cli.app import usage_error_class

        if isinstance(exc, usage_error_class()):
            message = exc.format_message()  # type: ignore[attr-defined]
            command = getattr(getattr(exc, "ctx", None), "command_path", "mlops")
            return _report(
                message,
                f"see '{command} --help'",
                exit_code=EXIT_USAGE,
                kind="UsageError",
                as_json=as_json,
            )
        translated = _translate_foreign(exc)
        if translated is not None:
            return _report_known(translated, args, debug=debug, as_json=as_json)
        if debug:
            _print_traceback()
        return _report(
            f"internal error: {type(exc).__name__}: {exc}",
            "run again with MLOPS_DEBUG=1 for the traceback, and report it",
            exit_code=EXIT_FAILED,
            kind="InternalError",
            as_json=as_json,
        )


def _report_known(exc: MlopsError, args: Sequence[str], *, debug: bool, as_json: bool) -> int:
    """An error mlops raised on purpose: its line, with its hint or its class's default one."""
    if debug:
        _print_traceback()
    hint = exc.hint
    if hint is None and exc.default_hint is not None:
        hint = exc.default_hint.format(command=_command_path(args))
    return _report(
        exc.message, hint, exit_code=exc.exit_code, kind=type(exc).__name__, as_json=as_json
    )
