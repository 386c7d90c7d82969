"""Benchmark of the tenant router (`mlops router serve`), each figure against a baseline run side by
side in the same script.

    python bench/router.py [triton] [hop] [scale] [--turns 5] [--seconds 3] [--requests 20000]
                           [--rounds 5] [--profile] [--models 1000] [--tenants 10000]
                           [--routes 100000] [--changes 100]

Parts (all by default):

1. ``triton``: the router in front of the local Triton (python-backend model ``answer``, one
   router worker) against Triton called directly, with `mlops perftest` (8 connections,
   ``router://`` as tenant ``t1`` against ``http://`` with the Triton model name). The two take
   turns (``--turns`` each, ``--seconds`` each); medians. Then the same turns at a fixed rate
   (a fifth of the direct throughput), where latency is not queueing. Each turn also reads the
   CPU per request of the generator (its report), Triton (the server and its backend stubs) and
   the router (``/proc``): on a small machine they share the cores, and the sum bounds the
   throughput. Where nginx is installed, nginx ``proxy_pass`` to Triton takes the same turns,
   as a reference for what any proxy in the way costs on the machine. Targets: throughput
   router/direct >= 0.85, p50 added by the router <= 0.3 ms.
   ``--profile`` then runs one more router under cProfile behind the 8-connection load
   (:mod:`router_profile`) and prints where its time goes.
2. ``hop``: the hop's own cost. One trivial upstream (nginx ``return 200``, a small JSON body);
   nginx ``proxy_pass`` to it (upstream keep-alive) and the router in front of the same upstream
   (a deployment record whose server is that upstream). The same `mlops perftest` run (8
   connections, ``--requests`` each, the same requests and headers) through each, ``--rounds``
   times in turn (and at a fixed 2,000 req/s, no target); the CPU of each proxy's processes over
   its run. Target: router CPU per request <= 3x nginx's (``--profile``: the router under cProfile behind the same load). Needs nginx
   (skipped, saying so, without it).
3. ``scale``: a routing table of 1,000 models, 10,000 tenants, 100,000 routes built in process
   from records: its memory (target < 200 MB) and resolves per second over a random mix, against
   the same loop doing only the dictionary lookups (target >= 500,000/s). Then propagation: a
   SQLite registry with those routes, two routers (``--refresh 0.25``), 100 route changes, the
   time until both answer with the new version (target p99 < 1 s). (:mod:`router_scale`.)

Run it on a machine where nothing else starts servers meanwhile: the figures are CPU shares.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from router_load import (
    REPO,
    LoadResult,
    Verdict,
    descendants_of,
    median_of,
    perftest,
    print_verdicts,
    take_turns,
    watched,
)

if TYPE_CHECKING:
    from mlops_cli.local.server import TritonState

sys.path.insert(0, str(REPO))  # tests.servers: the router harness the tests use

FIXTURE = REPO / "tests" / "fixtures" / "models" / "answer"
MLOPS = [sys.executable, "-m", "mlops_cli"]
CONNECTIONS = 8
FIXED_SHARE = 0.2  # the fixed-rate turns run at this share of the direct throughput
ANSWER_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [0.0]}]}
PARTS = ("triton", "hop", "scale")


def mlops(env: dict[str, str], *args: str) -> None:
    out = subprocess.run([*MLOPS, *args, "--json"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"mlops {' '.join(args)} failed: {out.stderr.strip()}")


def _summary(name: str, runs: list[LoadResult]) -> str:
    rps = ", ".join(f"{run.rps:,.0f}" for run in runs)
    p50 = ", ".join(f"{run.p50_ms:.2f}" for run in runs)
    errors = sum(run.errors for run in runs)
    medians = {
        group: statistics.median(run.cpu_us[group] for run in runs) for group in runs[0].cpu_us
    }
    cpu = "  ".join(f"{group} {value:.0f}" for group, value in medians.items())
    cpu += f"  (sum {sum(medians.values()):.0f})"
    return (
        f"  {name:<7} req/s {rps}   p50 ms {p50}   errors {errors}\n"
        f"  {'':<7} CPU us/request (medians): {cpu}"
    )


def serve_answer(work: Path) -> tuple[dict[str, str], TritonState]:
    """``answer`` v1 registered (``@production``) and deployed to a local Triton of a workspace
    in ``work``: the environment that names them, and the running server."""
    from mlops_cli.local.server import running_server

    env = {
        **os.environ,
        "MLOPS_WORKSPACE": str(work / ".mlops"),
        "MLOPS_REGISTRY": f"sqlite:///{work / 'registry.db'}",
        "MLOPS_STORE": f"file://{work / 'store'}",
    }
    shutil.copytree(FIXTURE, work / "answer")
    mlops(env, "register", str(work / "answer"), "--alias", "production")
    mlops(env, "local", "up")
    mlops(env, "deploy", "answer@1")
    running = running_server(work / ".mlops" / "local")
    assert running is not None, "the local Triton is not running"
    return env, running


def triton_part(turns: int, seconds: float, *, profile: bool) -> None:
    if find_spec("pytriton") is None:
        print("\nPart 1 (router vs direct, local Triton): skipped, the 'triton' extra is absent")
        return
    from mlops_cli.triton.naming import versioned_name
    from tests.servers.router import RouterProcess

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-router-"))
    env = {**os.environ, "MLOPS_WORKSPACE": str(work / ".mlops")}  # for `local down`
    profiled = ""
    try:
        env, running = serve_answer(work)
        payload = work / "answer.jsonl"
        payload.write_text(json.dumps(ANSWER_BODY) + "\n")
        # No warm-up in a turn: the CPU of the servers is read around the whole run, so every
        # request sent must be counted; one unmeasured turn of each warms them instead.
        common = ("--payload", f"@{payload}", "--duration", f"{seconds:g}s", "--warmup", "0s")
        direct = (f"http://127.0.0.1:{running.http_port}", "-m", versioned_name("answer", 1))
        with contextlib.ExitStack() as stack:
            router = stack.enter_context(
                RouterProcess(
                    env["MLOPS_REGISTRY"], "--trust-tenant-header", "--workers", "1", env=env
                )
            )
            assert router.process is not None
            router_pid = router.process.pid
            via = (f"router://127.0.0.1:{router.port}", "-m", "answer", "--tenants", "t1")
            targets = {"direct": direct, "router": via}
            groups: dict[str, Callable[[], list[int]]] = {
                "triton": lambda: [running.pid, *descendants_of(running.pid)],
                "router": lambda: [router_pid],
            }
            if shutil.which("nginx"):  # a reference: what any proxy in the way costs here
                from router_hop import nginx_proxy

                nginx = stack.enter_context(nginx_proxy(work / "nginx", running.http_port))
                targets["nginx"] = (f"http://127.0.0.1:{nginx.port}", *direct[1:])
                groups["nginx"] = nginx.pids

            def contenders(*load: str) -> dict[str, Callable[[], LoadResult]]:
                return {
                    name: partial(watched, partial(perftest, *target, *common, *load), groups)
                    for name, target in targets.items()
                }

            take_turns(contenders("--concurrency", str(CONNECTIONS)), 1)  # warm-up
            closed = take_turns(contenders("--concurrency", str(CONNECTIONS)), turns)
            rate = round(FIXED_SHARE * median_of(closed["direct"], "rps"))
            fixed = take_turns(contenders("--rate", str(rate)), turns)
        if profile:
            from router_profile import profile_router

            profiled = profile_router(
                work / "router.prof",
                env["MLOPS_REGISTRY"],
                lambda port: perftest(
                    f"router://127.0.0.1:{port}",
                    *via[1:],
                    *common,
                    "--concurrency",
                    str(CONNECTIONS),
                ),
                env=env,
            )
    finally:
        subprocess.run([*MLOPS, "local", "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    report_triton(closed, fixed, rate, turns, seconds)
    print(profiled, flush=True)


def report_triton(
    closed: dict[str, list[LoadResult]],
    fixed: dict[str, list[LoadResult]],
    rate: int,
    turns: int,
    seconds: float,
) -> None:
    print(
        f"\nPart 1: router vs direct, local Triton, model answer ({turns} turns of {seconds:g} s)"
    )
    print(f"{CONNECTIONS} connections (closed loop):")
    for name, runs in closed.items():
        print(_summary(name, runs))
    print(f"fixed rate {rate:,} req/s ({FIXED_SHARE:.0%} of the direct median):")
    for name, runs in fixed.items():
        print(_summary(name, runs))
    verdicts = []
    for proxy in ("router", "nginx"):
        if proxy not in closed:
            continue
        ratio = median_of(closed[proxy], "rps") / median_of(closed["direct"], "rps")
        added = median_of(closed[proxy], "p50_ms") - median_of(closed["direct"], "p50_ms")
        added_fixed = median_of(fixed[proxy], "p50_ms") - median_of(fixed["direct"], "p50_ms")
        judged = proxy == "router"  # nginx is a reference: no target of its own
        verdicts += [
            Verdict(
                f"throughput {proxy}/direct",
                f"{ratio:.2f}",
                ">= 0.85" if judged else "(reference)",
                ratio >= 0.85 if judged else None,
            ),
            Verdict(
                f"p50 added by {proxy}, {CONNECTIONS} conns",
                f"{added:+.3f} ms",
                "<= 0.3 ms" if judged else "(reference)",
                added <= 0.3 if judged else None,
            ),
            Verdict(
                f"p50 added by {proxy}, fixed rate",
                f"{added_fixed:+.3f} ms",
                "<= 0.3 ms" if judged else "(reference)",
                added_fixed <= 0.3 if judged else None,
            ),
        ]
    errors = sum(run.errors for runs in (*closed.values(), *fixed.values()) for run in runs)
    verdicts.append(Verdict("failed requests", f"{errors}", "0", errors == 0))
    print_verdicts(
        f"Part 1 verdicts ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)", verdicts
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--turns", type=int, default=5, help="part 1: turns of each contender")
    parser.add_argument("--seconds", type=float, default=3.0, help="part 1: seconds per turn")
    parser.add_argument("--requests", type=int, default=20_000, help="part 2: per proxy run")
    parser.add_argument("--rounds", type=int, default=5, help="part 2: runs of each proxy")
    parser.add_argument("--profile", action="store_true", help="parts 1, 2: cProfile the router")
    parser.add_argument("--models", type=int, default=1_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=100, help="part 3: route changes")
    args = parser.parse_args()
    parts = args.parts or PARTS
    if unknown := set(parts) - set(PARTS):
        parser.error(
            f"unknown part(s) {', '.join(sorted(unknown))}: valid parts are {', '.join(PARTS)}"
        )
    print(f"# router benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    if "triton" in parts:
        triton_part(args.turns, args.seconds, profile=args.profile)
    if "hop" in parts:
        from router_hop import hop_part

        hop_part(args.requests, args.rounds, profile=args.profile)
    if "scale" in parts:
        from router_scale import scale_part

        scale_part(args.models, args.tenants, args.routes, args.changes)


if __name__ == "__main__":
    main()
