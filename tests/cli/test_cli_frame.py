"""The command-line frame: exit codes from the error hierarchy, one-line errors, clean --json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlops_cli import errors
from mlops_cli.cli import app as app_module
from mlops_cli.cli.main import hoist_global_options, main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.MlopsError("failed"), 1),
        (errors.NotFoundError("no such model"), 1),
        (errors.ConflictError("lost the race"), 1),
        (errors.ServerError("server died"), 1),
        (errors.WorkspaceError("not writable"), 1),
        (errors.ExtraNotInstalledError(feature="x", extra="triton"), 1),
        (errors.PortInUseError(port=8000, key="local.http_port"), 1),
        (errors.UsageError("bad flag"), 2),
        (errors.ValidationError("bad", source="f.yaml", key_path="a.b"), 2),
        (errors.ConfigError("bad", source="f.yaml"), 2),
        (errors.GateFailedError("p99 over 250ms"), 3),
        (KeyboardInterrupt(), 130),
        (RuntimeError("boom"), 1),
    ],
)
def test_each_error_class_maps_to_its_exit_code(
    error: BaseException,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def raise_it(args: list[str]) -> int:
        raise error

    monkeypatch.setattr(app_module, "run", raise_it)
    assert main(["config", "show"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err


def test_error_line_carries_the_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def raise_it(args: list[str]) -> int:
        raise errors.ExtraNotInstalledError(feature="the local Triton server", extra="triton")

    monkeypatch.setattr(app_module, "run", raise_it)
    assert main(["local", "up"]) == 1
    err = capsys.readouterr().err
    assert "needs the 'triton' extra" in err
    assert "pip install 'mlops-cli[triton]'" in err


def test_json_error_document_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def raise_it(args: list[str]) -> int:
        raise errors.GateFailedError("p99 over 250ms")

    monkeypatch.setattr(app_module, "run", raise_it)
    assert main(["config", "show", "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["error"] == {
        "type": "GateFailedError",
        "message": "p99 over 250ms",
        "hint": None,
        "exit_code": 3,
    }


def test_debug_env_prints_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def raise_it(args: list[str]) -> int:
        raise errors.ServerError("server died")

    monkeypatch.setattr(app_module, "run", raise_it)
    monkeypatch.setenv("MLOPS_DEBUG", "1")
    assert main(["local", "status"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "statu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: No such command 'statu'")
    assert len(err.splitlines()) == 1
    assert main(["local", "logs", "--lines", "many"]) == 2
    assert main(["config", "show", "--no-such-flag"]) == 2


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_cli import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mlops {__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "local" in out and "config" in out


def test_global_options_are_accepted_after_the_subcommand() -> None:
    assert hoist_global_options(["config", "show", "--json", "--set", "target=local"]) == [
        "--json",
        "--set",
        "target=local",
        "config",
        "show",
    ]
    assert hoist_global_options(["local", "logs", "-q", "--set=local.http_port=1", "-n", "3"]) == [
        "-q",
        "--set=local.http_port=1",
        "local",
        "logs",
        "-n",
        "3",
    ]
    # after "--" nothing is moved
    assert hoist_global_options(["x", "--", "--json"]) == ["x", "--", "--json"]


def test_json_stdout_is_exactly_one_document_in_a_subprocess(isolated_config: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlops_cli", "config", "show", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # raises if anything else is on stdout
    assert document["values"]["target"] == "local"
    assert document["sources"]["target"] == "default"


def test_heavy_modules_are_not_imported_for_help() -> None:
    code = (
        "import sys\n"
        "from mlops_cli.cli.main import main\n"
        "rc = main(['--help'])\n"
        "heavy = [m for m in ('boto3', 'botocore', 'tritonclient', 'jsonschema', 'yaml', 'numpy', 'rich.table') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_placeholder_summaries_match_the_real_commands() -> None:
    import typer

    from mlops_cli.cli.app import COMMANDS, load_command

    for name, (_, _, is_group, summary) in COMMANDS.items():
        target = load_command(name)
        real = target.info.help if is_group else (target.__doc__ or "").strip().splitlines()[0]
        assert isinstance(target, typer.Typer) == is_group, name
        assert summary == real, f"{name}: the placeholder says {summary!r}, the command {real!r}"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_cli.cli.app import COMMANDS

    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert "Usage: mlops " + name in capsys.readouterr().out


def test_version_imports_only_the_exit_path() -> None:
    """`mlops --version` is answered before the command line framework or any command state is
    imported (it is what scripts call to check that mlops is there)."""
    code = (
        "import sys\n"
        "from mlops_cli.cli.main import main\n"
        "rc = main(['--version'])\n"
        "loaded = [m for m in ('typer', 'click', 'rich', 'mlops_cli.cli.context', 'mlops_cli.config', 'json', 'dataclasses') if m in sys.modules]\n"
        "print('LOADED=' + ','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "LOADED="
