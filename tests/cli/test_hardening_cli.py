"""The command line's exit path, as a user meets it (issue 12): usage errors for blank visibility,
credentials errors with a hint, Ctrl-C, the same exit code for the same mistake, output that is
never cut when it is not a terminal, a hint on every error line, and usage lines without
``{placeholders}``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_cli.cli.app import COMMANDS
from mlops_cli.cli.main import main
from tests.cli import error_line, run
from tests.conftest import FIXTURES, REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def tiny(capsys: pytest.CaptureFixture[str]) -> str:
    """The tiny fixture model, registered in this test's project as ``tiny`` version 1."""
    run(capsys, "register", str(FIXTURES / "models" / "tiny"))
    return "tiny"


# -- item 2: visibility is never changed by a blank value ----------------------------------


@pytest.mark.parametrize("blank", [" ", "", ",", "acme,,globex", "acme, "])
def test_blank_private_to_is_a_usage_error_and_changes_nothing(
    tiny: str, capsys: pytest.CaptureFixture[str], blank: str
) -> None:
    run(capsys, "models", "update", tiny, "--private-to", "acme")

    line = error_line(capsys, "models", "update", tiny, "--private-to", blank, code=2)

    assert "--private-to" in line and "--public" in line
    assert run(capsys, "models", "show", tiny)["private_to"] == ["acme"]


def test_public_is_its_own_flag_and_excludes_private_to(
    tiny: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "models", "update", tiny, "--private-to", "acme,globex")
    assert run(capsys, "models", "show", tiny)["private_to"] == ["acme", "globex"]

    line = error_line(capsys, "models", "update", tiny, "--public", "--private-to", "acme", code=2)
    assert "contradict" in line
    assert "nothing to update" in error_line(capsys, "models", "update", tiny, code=2)
    assert run(capsys, "models", "show", tiny)["private_to"] == ["acme", "globex"]

    assert run(capsys, "models", "update", tiny, "--public")["private_to"] == []


# -- item 17: credentials and Ctrl-C ----------------------------------------------------------


@pytest.fixture
def partial_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An access key without its secret, and no profile or instance metadata to fall back on."""
    from mlops_cli.aws import reset_clients

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEONLYHALF")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached
    reset_clients()
    yield
    reset_clients()


@pytest.mark.parametrize(
    "args",
    [
        ("models", "list", "--registry", "dynamodb://mlops-registry"),
        ("upload", str(FIXTURES / "models" / "tiny"), "--store", "s3://bucket/prefix"),
    ],
    ids=["dynamodb", "s3"],
)
def test_partial_aws_credentials_are_a_credentials_error_with_a_hint(
    partial_credentials: None, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    line = error_line(capsys, *args, code=1)

    assert "internal error" not in line and "report it" not in line
    assert "credentials" in line and "AWS_SECRET_ACCESS_KEY" in line
    assert "(hint: " in line

    document = run(capsys, *args, code=1)
    assert document["error"]["type"] == "CredentialsError"
    assert document["error"]["hint"]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ctrl_c_exits_130_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    """Ctrl-C inside a real command, through the real Typer frame (which used to swallow it)."""
    import mlops_cli.config

    def interrupted(**_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mlops_cli.config, "resolve_settings", interrupted)

    code = main(["config", "show", *(["--json"] if as_json else [])])

    captured = capsys.readouterr()
    assert code == 130
    assert captured.err.strip().splitlines() == ["interrupted"]
    if as_json:
        document = json.loads(captured.out)
        assert document["error"]["type"] == "Interrupted"
        assert document["error"]["exit_code"] == 130
    else:
        assert captured.out == ""


def test_sigint_to_a_running_command_exits_130(tmp_path: Path) -> None:
    """A real SIGINT to a real process, blocked reading its --input file from a FIFO."""
    import signal
    import time

    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_cli", "invoke", "tiny", "--input", f"@{fifo}", "--json"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writer = None
    try:
        deadline = time.monotonic() + 60
        # A reader blocked in open() has no descriptor yet; opening the write end (without
        # blocking) succeeds once it waits there, and lets it go on to block in read().
        while writer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
        while time.monotonic() < deadline and not _blocked_on(process.pid, fifo):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        if writer is not None:
            os.close(writer)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert json.loads(out)["error"]["type"] == "Interrupted"


def _blocked_on(pid: int, path: Path) -> bool:
    """Whether process ``pid`` is inside a system call on a descriptor of ``path`` (blocked in
    read() on the FIFO). Having it open is not enough: a SIGINT that lands between open() and
    read() is handled before the read begins, and the read then blocks for good."""
    try:
        with open(f"/proc/{pid}/syscall") as handle:
            fields = handle.read().split()
        if len(fields) < 2 or not fields[0].isdigit():  # "running": not in a system call
            return False
        return os.readlink(f"/proc/{pid}/fd/{int(fields[1], 16)}") == str(path)
    except (OSError, ValueError):
        return False


# -- item 18: the same mistake, the same exit code --------------------------------------------


@pytest.mark.parametrize("command", ["validate", "upload", "register"])
def test_a_missing_model_folder_is_exit_2_everywhere(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    line = error_line(capsys, command, "./no-such-folder", code=2)
    assert "no-such-folder" in line


# -- item 25: never cut when stdout is not a terminal -----------------------------------------


def test_piped_output_is_never_truncated_or_wrapped(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"folder-{i:02d}-with-a-long-name" for i in range(8)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_") and k != "COLUMNS"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    output = tmp_path / "config.txt"
    with output.open("w") as stdout:  # a file: not a terminal
        subprocess.run(
            [sys.executable, "-m", "mlops_cli", "config", "show", "--set", f"workspace={deep}"],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            check=True,
            timeout=60,
        )
    lines = output.read_text().splitlines()
    [workspace] = [line for line in lines if line.startswith("workspace")]
    assert str(deep) in workspace  # the whole path, on one line
    assert len(workspace) > 200 and "…" not in output.read_text()


def test_tables_are_not_cut_into_a_pipe(tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    description = "a description longer than any terminal " * 6
    run(capsys, "models", "update", tiny, "--description", description.strip())

    assert main(["models", "list"]) == 0

    out = capsys.readouterr().out
    assert description.strip() in out


# -- item 26: a hint on every error line, true hints, plain usage lines -----------------------


@pytest.mark.parametrize(
    "args",
    [
        ("models", "show", "nosuch"),
        ("undeploy", "nosuch"),
        ("models", "versions", "nosuch"),
        ("alias", "get", "tiny", "nosuch"),
        ("models", "archive", "tiny", "9"),
        ("route", "get", "acme", "tiny"),
        ("route", "delete", "acme", "tiny"),
        ("invoke", "tiny@9", "--input", "{}"),
    ],
)
def test_every_error_line_has_a_hint_that_fits(
    tiny: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    assert main(list(args)) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "(hint: " in lines[0]
    assert "register it first" not in lines[0]


def test_an_error_raised_without_a_hint_gets_its_class_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.cli import app as app_module
    from mlops_cli.errors import ConflictError, UsageError

    for error, expected in (
        (UsageError("bad value"), "see 'mlops route set --help'"),
        (ConflictError("lost a race"), "retry"),
    ):

        def raise_it(args: list[str], error: Exception = error) -> int:
            raise error

        monkeypatch.setattr(app_module, "run", raise_it)
        assert expected in error_line(capsys, "route", "set", "a", "b", "1", code=error.exit_code)  # type: ignore[attr-defined]


def _usage_lines(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main([*args, "--help"]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("Usage:")]


def test_usage_lines_show_placeholders_in_capitals(capsys: pytest.CaptureFixture[str]) -> None:
    seen = []
    for name, (_, _, is_group, _) in COMMANDS.items():
        if is_group:
            from mlops_cli.cli.app import load_command

            group = load_command(name)
            for sub in group.registered_commands:
                seen += _usage_lines([name, sub.name or sub.callback.__name__], capsys)
        else:
            seen += _usage_lines([name], capsys)
    assert seen and not [line for line in seen if "{" in line]
    assert "Usage: mlops init [OPTIONS] FOLDER" in seen
    assert "Usage: mlops route set [OPTIONS] TENANT MODEL TARGET" in seen
