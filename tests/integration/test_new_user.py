"""Tried as a new user would: clone the repository (the checkout's HEAD) into an empty folder and
run the README's first two commands verbatim, as they stand in the first ```bash block.

The first (``bash scripts/demo.sh``) installs everything (``scripts/bootstrap.sh`` into the
clone's own ``.venv``, reusing the pip cache and wheelhouse this machine's pip is configured with)
and runs the demo: its output must show a deployed model answering, a streamed answer, a
perftest summary, and the workspace and HTML report it keeps.

The second (``bash scripts/test.sh``) runs the whole test suite, which holds this test: it is run
verbatim, but with ``PYTEST_ADDOPTS`` narrowing it to a few quick tests (this one among them) and
``NEW_USER_TEST_INSIDE=1``, which makes this test skip itself there instead of recursing (not an
``MLOPS_*`` name: the suite's autouse fixture clears those before a test reads them).

Bounded: 20 minutes for the first command (a cold bootstrap installs the wheels; about 45 s here
from the local wheelhouse, 50 s for the demo after it), 5 for the second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INSIDE = "NEW_USER_TEST_INSIDE"
QUICK = (
    "tests/cli/test_cli_frame.py tests/integration/test_new_user.py "
    "-k 'test_version_and_help or test_a_new_user' -p no:cacheprovider"
)


def readme_commands(readme: Path, count: int) -> list[str]:
    """The first ``count`` command lines of the README's first ```bash block, as written."""
    block = re.search(r"^```bash\n(.*?)^```", readme.read_text(), re.MULTILINE | re.DOTALL)
    assert block, f"{readme} has no ```bash block"
    lines = [line for line in block[1].splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) >= count, lines
    return lines[:count]


def new_user_environment(tmp: Path) -> dict[str, str]:
    """This environment without this checkout's virtualenv, temporary files under ``tmp``."""
    venv = str(Path(sys.executable).parent)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv]
    environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**environ, "PATH": os.pathsep.join(path), "TMPDIR": str(tmp)}


def shell(line: str, cwd: Path, environ: dict[str, str], timeout: float) -> tuple[int, str, float]:
    """Run one README line with bash; return its exit code, its output and its seconds."""
    start = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, time.monotonic() - start


def test_a_new_user_clones_and_runs_the_readme(tmp_path: Path) -> None:
    if os.environ.get(INSIDE):
        pytest.skip(f"{INSIDE}: inside the suite this test runs (no recursion)")
    require(shutil.which("git") is not None and shutil.which("bash") is not None, "needs git, bash")
    clone = tmp_path / "mlops"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    demo, suite = readme_commands(clone / "README.md", 2)
    (tmp_path / "tmp").mkdir()
    environ = new_user_environment(tmp_path / "tmp")

    code, out, seconds = shell(demo, clone, environ, timeout=1200)
    assert code == 0, out[-4000:]
    print(f"{demo!r}: {seconds:.0f} s")
    assert re.search(r"deployed iris-classifier v1 on local", out), out[-4000:]
    assert '"probabilities": [' in out  # the classifier answering
    streamed = re.findall(r"tiny-lm v1 \(alias\) · (\d+) chunks", out)
    assert streamed and int(streamed[0]) == 12, out[-4000:]  # max_tokens 12, token by token
    assert re.search(r"^step +req/s +p50 ms .*p99 ms", out, re.MULTILINE)  # the perftest table
    assert "SLA p99<250ms,error_rate<0.1%: met" in out
    kept = re.search(r"^demo workspace \(kept\): (\S+)$", out, re.MULTILINE)
    report = re.search(r"^perftest HTML report: (\S+)$", out, re.MULTILINE)
    assert kept and report, out[-2000:]
    assert Path(kept[1], ".mlops").is_dir() and Path(report[1]).is_file()

    code, out, seconds = shell(suite, clone, {**environ, INSIDE: "1", "PYTEST_ADDOPTS": QUICK}, 300)
    print(f"{suite!r}: {seconds:.0f} s")
    assert code == 0, out[-4000:]
    assert re.search(r"\b1 passed, 1 skipped\b", out), out[-2000:]
