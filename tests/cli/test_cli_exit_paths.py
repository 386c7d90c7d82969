"""Every way a command ends goes through ``main``, the one exit path: a result whose outcome is
not OK sets the exit code after the result is printed (with --json: exactly one JSON document on
stdout, the result; the error line, if any, on stderr), and no command module exits on its own.

Covered elsewhere and not repeated here: store verify with damage left is exit 1 with the report
and one error line (tests/unit/test_hardening_store.py::test_store_verify_reports_then_repairs);
status with drift is exit 1 (tests/integration/test_hardening_local.py, test_mme_local.py); an SLA
not met is exit 3 as a subprocess (tests/integration/test_perftest_loopback.py::
test_sla_exit_codes_and_json_summary); failed requests are exit 3
(tests/integration/test_hardening_perf.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli.main import main
from tests.conftest import FIXTURES
from tests.servers.delay_http import DelayServer

pytestmark = pytest.mark.unit

CLI_DIR = Path(__file__).resolve().parents[2] / "mlops_cli" / "cli"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, list[str]]:
    """``mlops ARGS --json``: the exit code, the one JSON document on stdout, the stderr lines."""
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err.strip().splitlines()


@pytest.fixture
def registered(isolated_config: Path, capsys: pytest.CaptureFixture[str]) -> str:
    folder = isolated_config / "tiny"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    code, document, _ = run_json(capsys, "register", str(folder))
    assert code == 0
    return str(document["model"])


@pytest.fixture(scope="module")
def loopback() -> Iterator[DelayServer]:
    with DelayServer(delay_ms=1) as server:
        yield server


def test_validate_with_errors_is_exit_2_and_its_findings_are_the_result(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = isolated_config / "tiny"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    spec = folder / "mlops.yaml"
    spec.write_text(spec.read_text() + "\nreplicas_wanted: 3\n")  # not a key of the schema
    code, document, err = run_json(capsys, "validate", str(folder))
    assert code == 2
    assert document["valid"] is False and document["findings"]
    assert [line for line in err if line.startswith("error: ")], err
    assert main(["validate", str(folder)]) == 2  # the same without --json
    assert "valid (" not in capsys.readouterr().out


def test_status_with_a_deployment_not_ready_is_exit_1_after_the_table(
    registered: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.config import resolve_settings
    from mlops_cli.registry import open_registry

    registry = open_registry(resolve_settings().registry)
    registry.record_deployment(registered, 1, "local", detail={})  # no local server runs
    code, document, err = run_json(capsys, "status")
    assert code == 1
    [row] = document["deployments"]
    assert (row["model"], row["version"], row["target"]) == (registered, 1, "local")
    assert row["state"] != "READY"
    assert err and err[-1].startswith("warning: 1 of 1 deployments not READY"), err
    assert main(["status"]) == 1
    assert registered in capsys.readouterr().out


def test_local_status_of_a_stopped_server_is_exit_1_without_an_error_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, document, err = run_json(capsys, "local", "status")
    assert (code, document["state"]) == (1, "stopped")
    assert not [line for line in err if line.startswith("error:")], err
    code, document, _ = run_json(capsys, "local", "status", "--mme")
    assert (code, document["state"]) == (1, "stopped")


def test_perftest_sla_not_met_is_exit_3_with_the_report_then_one_error_line(
    loopback: DelayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [loopback.url + "/infer", "--requests", "5", "--warmup", "0s", "--quiet"]
    code, document, err = run_json(capsys, "perftest", *args, "--sla", "p50<0.001ms")
    assert code == 3
    assert document["sla"]["passed"] is False and document["steps"]  # the report, in full
    assert err == [err[-1]] and err[-1].startswith("error: SLA not met: p50<0.001ms"), err

    code, document, err = run_json(capsys, "perftest", *args, "--sla", "p50<60s")
    assert (code, document["sla"]["passed"]) == (0, True)
    assert not err


def test_perftest_whose_every_request_fails_is_exit_1_after_the_report(
    loopback: DelayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loopback.control(error_status=500, error_every=1)
    try:
        args = [loopback.url + "/infer", "--requests", "5", "--warmup", "0s", "--quiet"]
        code, document, err = run_json(capsys, "perftest", *args)
    finally:
        loopback.control(error_status=0, error_every=1)
    assert code == 1
    assert document["aborted"] and document["steps"][0]["errors"] >= 1
    assert err[-1].startswith("error: load test aborted at ") and "(hint: " in err[-1], err


def test_no_command_module_exits_on_its_own_or_reaches_past_the_api() -> None:
    """Command modules parse, call the api and render: the exit code is their return value, and
    backends, clients and deploy targets are the api's business."""
    forbidden = (
        "typer.Exit",
        "sys.exit",
        "import boto3",
        "tritonclient",
        "open_registry",
        "open_store",
        "open_target",
        "from mlops_cli.deploy import",
        "from mlops_cli.stores",
        "from mlops_cli.registry import",
    )
    offenders = [
        f"{path.name}: {needle}"
        for path in sorted(CLI_DIR.glob("*_cmd.py"))
        for needle in forbidden
        if needle in path.read_text()
    ]
    assert offenders == []
