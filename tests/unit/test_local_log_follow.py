"""``mlops local logs --follow`` through the library: :meth:`mlops_cli.api.local.LocalLog.follow`
yields the lines appended after the call, never the ones already shown, and nothing without a log."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlops_cli.api.local import LocalLog

pytestmark = pytest.mark.unit


def test_follow_yields_only_lines_appended_after_the_call(tmp_path: Path) -> None:
    log_path = tmp_path / "triton.log"
    log_path.write_text("old 1\nold 2\n", encoding="utf-8")
    appended = LocalLog(log_path, ["old 1", "old 2"]).follow(poll_s=0.01)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("new 1\nnew 2\n")
    lines: list[str] = []
    # Read on a thread with a bound: a follow that lost the lines would poll forever.
    reader = threading.Thread(target=lambda: lines.extend([next(appended), next(appended)]))
    reader.daemon = True
    reader.start()
    reader.join(timeout=30)
    assert lines == ["new 1\n", "new 2\n"]
    appended.close()


def test_follow_without_a_log_yields_nothing(tmp_path: Path) -> None:
    assert list(LocalLog(tmp_path / "absent.log", []).follow()) == []
