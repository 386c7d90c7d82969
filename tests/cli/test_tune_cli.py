"""`mlops tune` bad input through the command line: one error line, exit 2 (1 for a model that does
not exist), and nothing started or loaded: every refusal comes before the local Triton."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import error_line, run


@pytest.fixture
def project(
    isolated_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """A registry and store with one registered model, ``answer``."""
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    monkeypatch.setenv("MLOPS_WORKSPACE", str(tmp_path / "workspace"))
    from tests.conftest import FIXTURES

    run(capsys, "register", str(FIXTURES / "models" / "answer"))
    return tmp_path


def refused(capsys: pytest.CaptureFixture[str], project: Path, *args: str, code: int = 2) -> str:
    line = error_line(capsys, "tune", *args, code=code)
    assert line.startswith("error: ")
    assert not (project / "workspace" / "local" / "server.json").exists()  # nothing started
    return line


def test_an_sla_that_does_not_parse(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, project, "answer@1", "--sla", "p99 under 100ms")
    assert "SLA expression 'p99 under 100ms' does not parse" in line


def test_a_budget_too_small_for_one_measurement(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, project, "answer@1", "--sla", "p99<100ms", "--budget", "1s")
    assert "--budget 1s is too small for one measurement" in line and "hint: give --budget" in line


def test_a_traffic_level_that_is_not_a_rate(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, project, "answer@1", "--sla", "p99<100ms", "--traffic", "lots")
    assert "--traffic: 'lots' is not a request rate" in line


def test_a_price_table_that_does_not_validate(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = project / "prices.yaml"
    prices.write_text("as_of: '2025-01-01'\ncurrency: USD\ninstances:\n  box: {price: 1}\n")
    line = refused(capsys, project, "answer@1", "--sla", "p99<100ms", "--prices", str(prices))
    assert f"{prices}: instances.box" in line
    line = refused(
        capsys, project, "answer@1", "--sla", "p99<100ms", "--instance-type", "ml.c5.xlarg"
    )
    assert "'ml.c5.xlarg' is not in the price table" in line and "did you mean" in line


def test_an_unknown_model_or_version(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, project, "nope@1", "--sla", "p99<100ms", code=1)
    assert "nope" in line
    line = refused(capsys, project, "answer@7", "--sla", "p99<100ms", code=1)
    assert "7" in line


def test_contradictory_flags(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(
        capsys, project, "answer@1", "--sla", "p99<1s", "--rate", "100", "--concurrency", "4"
    )
    assert "--rate and --concurrency both fix the client load" in line
    line = refused(capsys, project, "answer@1", "--sla", "p99<1s", "--server", "a")
    assert "--server names a server of a fleet file" in line


def test_help_lists_the_search_and_cost_options(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.cli.main import main

    assert main(["tune", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--sla", "--objective", "--budget", "--traffic", "--apply", "--prices"):
        assert option in text
