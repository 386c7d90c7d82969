"""Shell completion: ``mlops --install-completion [SHELL]``, ``mlops --show-completion [SHELL]``,
and the completion requests that the installed script sends back to ``mlops``.

Typer's completion does the work: its scripts for bash, zsh, fish and PowerShell, and the
completion classes that answer them (registered by :func:`enable`). They live in Typer's
``_completion_shared`` and ``_completion_classes`` modules, which ``add_completion=True`` would use
the same way; the version pin in pyproject.toml bounds that, and ``tests/cli/test_completion.py``
drives a real bash through them. What is here is what the
lazy command loading of :mod:`mlops_cli.cli.app` needs around it:

- the shell may be named after either option or left out (then it is the shell running
  ``mlops``, else ``$SHELL``): :func:`name_the_shell` rewrites a bare option as
  ``--show-completion auto``, since a Typer option cannot take an optional value;
- a completion request is a plain ``mlops`` run with ``_MLOPS_COMPLETE`` set and the words typed so
  far in ``COMP_WORDS`` (bash) or ``_TYPER_COMPLETE_ARGS`` (zsh, fish, PowerShell), not in argv:
  :func:`words_being_completed` gives them, so that the app loads the command being completed for
  real and its subcommands and options complete too.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlops_cli.errors import UsageError

PROG_NAME = "mlops"
COMPLETE_VAR = "_MLOPS_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
AUTO = "auto"
OPTIONS = frozenset({"--install-completion", "--show-completion"})


def name_the_shell(args: Sequence[str]) -> list[str]:
    """``args`` with ``auto`` after each completion option that is last or followed by another
    option (any other word after it is the shell it names)."""
    named: list[str] = []
    for index, arg in enumerate(args):
        named.append(arg)
        following = args[index + 1] if index + 1 < len(args) else "-"
        if arg in OPTIONS and following.startswith("-"):
            named.append(AUTO)
    return named


def is_completion_request(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(COMPLETE_VAR))


def words_being_completed(environ: Mapping[str, str]) -> list[str]:
    """The words after ``mlops`` on the command line being completed."""
    line = environ.get("COMP_WORDS") or environ.get("_TYPER_COMPLETE_ARGS") or ""
    try:
        words = shlex.split(line)
    except ValueError:  # an open quote while typing
        words = line.split()
    return words[1:]


def enable() -> None:
    """Register Typer's completion classes (what Typer's scripts talk to)."""
    from typer._completion_classes import completion_init

    completion_init()


def resolve_shell(value: str) -> str:
    """``value`` as a shell name; ``auto``: the shell running ``mlops``, else ``$SHELL``."""
    if value != AUTO:
        if value not in SHELLS:
            raise UsageError(
                f"no completion for the shell {value!r}", hint=f"name one of {', '.join(SHELLS)}"
            )
        return value
    from typer._completion_shared import _get_shell_name

    detected = _get_shell_name() or Path(os.environ.get("SHELL", "")).name
    if detected not in SHELLS:
        raise UsageError(
            "cannot tell which shell to complete for",
            hint=f"name it: mlops --install-completion {SHELLS[0]} (or {', '.join(SHELLS[1:])})",
        )
    return detected


def script(shell: str) -> str:
    """The completion script for ``shell`` (what ``--show-completion`` prints)."""
    from typer._completion_shared import get_completion_script

    enable()
    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)


def install(shell: str) -> Path:
    """Write the script where ``shell`` loads it from (and make its start-up file load it)."""
    from typer._completion_shared import install as typer_install

    enable()
    _, path = typer_install(shell=shell, prog_name=PROG_NAME, complete_var=COMPLETE_VAR)
    return path
