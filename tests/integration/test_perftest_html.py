"""The HTML report renders in a real headless Chromium with no console message at all (errors,
warnings or logs), its script runs, and its plots are inline SVG (no network needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlops_cli.perf import report
from mlops_cli.perf.sla import parse_sla
from tests.conftest import require
from tests.unit.test_perf_report import document

pytestmark = pytest.mark.integration


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages Chromium logged."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium is not None, "chromium is not installed (scripts/bootstrap.sh installs it)")
    assert chromium is not None
    result = subprocess.run(
        [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
            "--virtual-time-budget=2000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def test_the_html_report_renders_with_no_console_errors(tmp_path: Path) -> None:
    doc = document(errors=1)
    report.apply_sla(doc, parse_sla("p99<1ms"))
    files = report.write_reports(doc, tmp_path / "report")

    dom, console = render(Path(files["html"]), tmp_path / "profile")

    assert console == []
    assert "steps: 2" in dom  # the inline script ran
    assert dom.count("<svg") == 4
    assert "Latency against throughput" in dom and "SLA p99&lt;1ms: not met" in dom


def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>missingFunction();</script></body></html>")
    _, console = render(page, tmp_path / "profile")
    assert any("missingFunction is not defined" in line for line in console)
