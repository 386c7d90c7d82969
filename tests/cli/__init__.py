"""Running the CLI in process from tests: the JSON result of a command, or its one error line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_cli.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
    """``mlops ARGS --json``: assert the exit code, return the decoded document (or None)."""
    result = main([*args, "--json"])
    captured = capsys.readouterr()
    assert result == code, captured.err + captured.out
    return json.loads(captured.out) if captured.out.strip() else None


def error_line(capsys: pytest.CaptureFixture[str], *args: str, code: int) -> str:
    """``mlops ARGS``: assert the exit code and that stderr is exactly one line; return it."""
    assert main(list(args)) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]
