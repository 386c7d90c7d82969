"""Shell completion: ``mlops --show-completion SHELL`` prints Typer's script, ``--install-completion``
writes it where the shell loads it, and a real bash that sourced the script completes commands,
the subcommands of a lazily loaded group and a command's options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_cli.cli import completion
from mlops_cli.errors import UsageError

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent


def mlops(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    if home is not None:
        environ["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_show_completion_bash_prints_the_script() -> None:
    shown = mlops("--show-completion", "bash")
    assert shown.returncode == 0, shown.stderr
    assert "_MLOPS_COMPLETE=complete_bash" in shown.stdout
    assert shown.stdout.strip().endswith("complete -o default -F _mlops_completion mlops")
    zsh = mlops("--show-completion", "zsh", "--json")  # a global option after it changes nothing
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef mlops")
    unknown = mlops("--show-completion", "tcsh")
    assert unknown.returncode == 2 and "no completion for the shell 'tcsh'" in unknown.stderr


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["mlops", ""], {"deploy", "models", "perftest", "local"}),
        (["mlops", "models", ""], {"list", "show", "versions", "update", "archive"}),
        (["mlops", "local", "u"], {"up"}),
        (["mlops", "deploy", "--dr"], {"--dry-run", "--drain"}),
    ],
)
def test_bash_completes_through_the_installed_script(words: list[str], expected: set[str]) -> None:
    bash = shutil.which("bash")
    if bash is None or not (BIN / "mlops").exists():
        pytest.skip("needs bash and the mlops entry point")
    script = mlops("--show-completion", "bash").stdout
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        '_mlops_completion mlops; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        [bash, "--norc", "-c", program],
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    offered = set(done.stdout.split())
    assert expected <= offered, (words, offered, done.stderr)
    assert all(o.startswith(words[-1]) for o in offered), offered


def test_install_completion_writes_where_the_shell_loads_it(tmp_path: Path) -> None:
    installed = mlops("--install-completion", "bash", home=tmp_path)
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "mlops.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    assert script.read_text().strip() == mlops("--show-completion", "bash").stdout.strip()
    assert str(script) in installed.stdout
    again = mlops("--install-completion", "bash", home=tmp_path)  # idempotent
    assert again.returncode == 0
    assert (tmp_path / ".bashrc").read_text().count("source ") == 1
    zsh = mlops("--install-completion", "zsh", home=tmp_path)
    assert zsh.returncode == 0 and (tmp_path / ".zfunc" / "_mlops").is_file()


def test_a_bare_option_detects_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    assert completion.name_the_shell(["--show-completion"]) == ["--show-completion", "auto"]
    assert completion.name_the_shell(["--show-completion", "--json"]) == [
        "--show-completion",
        "auto",
        "--json",
    ]
    assert completion.name_the_shell(["--install-completion", "fish"]) == [
        "--install-completion",
        "fish",
    ]
    import typer._completion_shared

    monkeypatch.setattr(typer._completion_shared, "_get_shell_name", lambda: None)
    monkeypatch.setenv("SHELL", "/usr/bin/fish")
    assert completion.resolve_shell("auto") == "fish"
    monkeypatch.setenv("SHELL", "/bin/tcsh")
    with pytest.raises(UsageError, match="cannot tell which shell"):
        completion.resolve_shell("auto")
