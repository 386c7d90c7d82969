"""What the parts of the router benchmark (``bench/router.py``) share: `mlops perftest` run as a
process of its own (its JSON report read back), the CPU a set of processes used (from
``/proc/PID/stat``), contenders taking turns, and the verdict table each part ends with.

The load generator is always its own process, so that it never shares an interpreter (and its
lock) with the benchmark or the servers it loads; on a small machine it still shares the cores.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadResult:
    """One step of an `mlops perftest` run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int  # answered, ok or not, in the measured step
    errors: int
    generator_us: float  # the generator's own CPU per request
    cpu_us: Mapping[str, float] = field(default_factory=dict)  # per request, by process group


def perftest(target: str, *args: str) -> LoadResult:
    """`mlops perftest TARGET ARGS --json`; its first step. Exits the benchmark when the run did
    not measure (exit 3, failed requests, is a result: the errors are counted)."""
    completed = subprocess.run(
        [sys.executable, "-m", "mlops_cli", "perftest", target, *args, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if completed.returncode not in (0, 3) or not completed.stdout.strip():
        detail = completed.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"mlops perftest {target} failed ({completed.returncode}): {detail}")
    step = json.loads(completed.stdout)["steps"][0]
    return LoadResult(
        rps=float(step["throughput_rps"]),
        p50_ms=float(step["latency_ms"]["p50"]),
        p99_ms=float(step["latency_ms"]["p99"]),
        requests=int(step["requests"]),
        errors=int(step["errors"]),
        generator_us=float(step["generator"]["cpu_us_per_request"]),
    )


def watched(
    run: Callable[[], LoadResult], groups: Mapping[str, Callable[[], Sequence[int]]]
) -> LoadResult:
    """``run``'s result with the CPU per request that each group of processes used over it (the
    whole run: give the run no warm-up, so that every request sent is counted)."""
    pids = {name: list(find()) for name, find in groups.items()}
    before = {name: cpu_seconds(found) for name, found in pids.items()}
    result = run()
    count = max(1, result.requests)
    used = {name: (cpu_seconds(found) - before[name]) * 1e6 / count for name, found in pids.items()}
    return replace(result, cpu_us={"generator": result.generator_us, **used})


def take_turns(
    contenders: dict[str, Callable[[], LoadResult]], turns: int
) -> dict[str, list[LoadResult]]:
    """Each contender once per turn; the order flips every turn so that neither always runs on
    a machine the other just warmed (or heated)."""
    names = list(contenders)
    runs: dict[str, list[LoadResult]] = {name: [] for name in names}
    for turn in range(turns):
        for name in names if turn % 2 == 0 else names[::-1]:
            runs[name].append(contenders[name]())
    return runs


def median_of(runs: Sequence[LoadResult], field: str) -> float:
    return float(statistics.median(float(getattr(run, field)) for run in runs))


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU of ``pids`` (every thread of each) since they started."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / CLOCK_TICKS


def descendants_of(parent: int) -> list[int]:
    """Every process below ``parent`` (an nginx master's workers, Triton's backend stubs)."""
    found = children_of(parent)
    for child in list(found):
        found += descendants_of(child)
    return found


def children_of(parent: int) -> list[int]:
    """The processes whose parent is ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent:
            found.append(int(entry))
    return found


@dataclass(frozen=True)
class Verdict:
    """One measured figure against its target; ``met`` None when it was not measured."""

    name: str
    shown: str
    target: str
    met: bool | None


def print_verdicts(title: str, verdicts: Sequence[Verdict]) -> None:
    width = max((len(v.name) for v in verdicts), default=0)
    print(f"\n{title}")
    for verdict in verdicts:
        mark = {True: "PASS", False: "MISS", None: "n/a"}[verdict.met]
        print(
            f"  {verdict.name:<{width}}  {verdict.shown:>14}   target {verdict.target:<12} {mark}"
        )
    print(flush=True)
