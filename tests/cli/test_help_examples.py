"""Every command's and group's ``--help`` ends with examples, and each example is a command line
that the real command accepts: its words name that command (or, for a group, one of its
commands), and its options and arguments parse with the command's own parser."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_cli.cli.main import GLOBAL_OPTIONS_WITH_VALUE, hoist_global_options, main

pytestmark = pytest.mark.unit


def real_root(name: str | None) -> Any:
    """The root command with ``name`` loaded for real (the others are placeholders)."""
    import typer

    from mlops_cli.cli.app import build_app

    return typer.main.get_command(build_app(name))


def command_paths() -> Iterator[str]:
    """The path of every command and group, ``""`` (mlops itself) first."""
    from mlops_cli.cli.app import COMMANDS
    from mlops_cli.cli.help_examples import command_paths

    yield ""
    for name in COMMANDS:
        for path, _ in command_paths(real_root(name).commands[name], name):
            yield path


def help_examples(path: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The example lines at the end of ``mlops PATH --help``."""
    assert main([*path.split(), "--help"]) == 0, path
    out = capsys.readouterr().out
    assert "\n  Examples:\n" in out, f"`mlops {path} --help` shows no example"
    section = out.split("\n  Examples:\n", 1)[1]
    return [line.strip() for line in section.splitlines() if line.startswith("    mlops")]


def parse_example(line: str) -> list[str]:
    """Parse ``line`` with the real commands; return the path of the command it runs."""
    from mlops_cli.cli.app import requested_command

    words = shlex.split(line, comments=True)
    assert words[0] == "mlops", line
    args = hoist_global_options(words[1:])
    root = real_root(requested_command(args))
    globals_ = []  # hoisted to the front: flags, and options with their value
    while args and args[0].startswith("-"):
        option = args.pop(0)
        globals_.append(option)
        if option in GLOBAL_OPTIONS_WITH_VALUE:
            globals_.append(args.pop(0))
    command, path = root, list[str]()
    context = root.make_context("mlops", [*globals_, args[0]] if args else globals_)
    while hasattr(command, "commands"):
        assert args and args[0] in command.commands, f"{line!r}: no command {args[:1]} in {path}"
        name = args.pop(0)
        command, path = command.commands[name], [*path, name]
        own = args if not hasattr(command, "commands") else args[:1]
        context = command.make_context(name, list(own), parent=context)
    return path


def test_every_help_shows_examples_that_parse(capsys: pytest.CaptureFixture[str]) -> None:
    seen = 0
    for path in command_paths():
        lines = help_examples(path, capsys)
        assert lines, f"`mlops {path} --help`: no example lines"
        for line in lines:
            ran = " ".join(parse_example(line))
            # The example runs this command, or (for a group) one of its commands.
            assert ran == path or ran.startswith(f"{path} ") or path == "", (path, line)
            seen += 1
    assert seen > 60


def test_an_example_naming_no_real_command_is_caught() -> None:
    assert parse_example("mlops models list --json") == ["models", "list"]
    with pytest.raises(AssertionError, match="no command"):
        parse_example("mlops models lsit")
    with pytest.raises(Exception, match="No such option"):
        parse_example("mlops models list --no-such-flag")
    with pytest.raises(Exception, match="Missing parameter: version"):
        parse_example("mlops alias set iris production")
