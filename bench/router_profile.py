"""The router's hot path under cProfile, for the router benchmark (``bench/router.py --profile``).

The router runs in a process of its own under cProfile with the default (wall) clock: a CPU clock
is a system call per function entry and exit, which inflates small functions several times over.
It records only between SIGUSR1 and SIGUSR2, sent around the measured load, so the figures are the
callbacks the event loop ran for those requests (the idle waits of the loop are in no function).
cProfile slows Python code about twofold: read the shares, and the absolute figures as upper
bounds.
"""

from __future__ import annotations

import os
import pstats
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from router_load import REPO, LoadResult

WARM_REQUESTS = 2_000
PROFILED = """
import cProfile, runpy, signal, sys
out = sys.argv[1]
profiler = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
sys.argv = ["mlops", *sys.argv[2:]]
try:
    runpy.run_module("mlops_cli", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
profiler.dump_stats(out)
"""


def profile_router(
    out: Path,
    registry: str,
    load: Callable[[int], LoadResult],
    *,
    env: dict[str, str] | None = None,
    top: int = 20,
) -> str:
    """A router (one worker, tenant header trusted) on ``registry`` under cProfile while
    ``load(port)`` runs against it (after an unmeasured run of the same load); the ``top``
    functions by own time, per request, and the own time by source file, as text to print."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [
        sys.executable, "-c", PROFILED, str(out), "router", "serve",
        "--port", str(port), "--registry", registry, "--trust-tenant-header",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **(env or {})}, stderr=subprocess.DEVNULL
    )
    try:
        _wait_ready(port, process)
        load(port)  # the table loaded, connections open, code paths warm
        os.kill(process.pid, signal.SIGUSR1)
        result = load(port)
        os.kill(process.pid, signal.SIGUSR2)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    return format_profile(pstats.Stats(str(out)), result, top)


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the profiled router exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the profiled router was not ready in time")


def format_profile(stats: pstats.Stats, result: LoadResult, top: int) -> str:
    total = max(1, result.requests)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    inside = sum(row[1][2] for row in rows)
    lines = [
        f"cProfile of the router over {total:,} requests ({result.rps:,.0f} req/s profiled):"
        f" {inside * 1e6 / total:.1f} us/request inside its callbacks (profiler overhead included)",
        "  own us/req  share  cum us/req  calls/req  function",
    ]
    for (path, line, name), (_, calls, own, cumulative, _) in rows[:top]:
        lines.append(
            f"  {own * 1e6 / total:10.2f}  {own / inside:5.1%}  {cumulative * 1e6 / total:10.2f}"
            f"  {calls / total:9.2f}  {_where(path)}:{line}({name})"
        )
    by_file: dict[str, float] = {}
    for (path, _, _), (_, _, own, _, _) in rows:
        by_file[_where(path)] = by_file.get(_where(path), 0.0) + own
    lines.append("  own time by source file:")
    for where, own in sorted(by_file.items(), key=lambda item: item[1], reverse=True)[:10]:
        lines.append(f"  {own * 1e6 / total:10.2f}  {own / inside:5.1%}  {where}")
    return "\n".join(lines) + "\n"


def _where(path: str) -> str:
    """``package/file.py``; C functions (``~``) are "built-in"."""
    if path == "~":
        return "built-in"
    return f"{Path(path).parent.name}/{Path(path).name}"
