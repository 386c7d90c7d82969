"""On-demand loading against the real thing (the calibration of `mlops placement simulate`): N real python-backend
versions of ``answer`` (default 50) deployed to ONE dynamic server (a local tritonserver declared
with memory for 10 of them), a Zipf(1.1) trace over the versions sent in order through a real
`mlops router serve`, and three hit rates on that same trace:

- measured: the router's own counters, 1 - cold / requests (``mlops_router_cold_requests_total``
  and ``mlops_router_requests_total`` read before and after the trace);
- ideal LRU of the same capacity (:func:`mlops_cli.placement.simulate.lru_hit_rate`);
- the simulator's prediction (:func:`mlops_cli.placement.simulate.simulate` replaying the trace,
  with the send times recorded and the mean load time the router measured).

Targets: measured within 2 points of the ideal LRU, the simulator within 5 points of the measured
one, and no failed request (every answer is its version's number).

The trace is one fixed sequence (``--seed``) sent SEQUENTIALLY by one client: each request is
sent when the previous one was answered. Setup (register + deploy of each version: a warmup
load and unload each) takes about 4-5 s per version; the trace costs about 2 s per cold request
(a python-backend load here). The defaults (50 versions, 150 requests) run in about 6-7 minutes.

    python bench/placement_ondemand.py [--versions 50] [--room 10] [--requests 150] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.servers: the router harness the tests use

FIXTURE = REPO / "tests" / "fixtures" / "models" / "answer"
MLOPS = [sys.executable, "-m", "mlops_cli"]
MODEL_MB = 64.0  # the answer fixture's recorded memory
ZIPF = 1.1
IDEAL_POINTS = 2.0
SIMULATOR_POINTS = 5.0


def mlops(env: dict[str, str], *args: str) -> dict[str, object]:
    out = subprocess.run([*MLOPS, *args, "--json"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"mlops {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


def zipf_trace(versions: int, requests: int, seed: int) -> list[int]:
    """Version indices (0-based) drawn by Zipf(1.1) over the versions in order."""
    rng = random.Random(seed)
    weights = [1.0 / (rank**ZIPF) for rank in range(1, versions + 1)]
    return rng.choices(range(versions), weights=weights, k=requests)


def counters(text: str) -> dict[str, float]:
    """Requests answered, cold requests, loads and the load time the router counted."""
    from prometheus_client.parser import text_string_to_metric_families

    out = dict.fromkeys(("requests", "cold", "loads", "load_seconds"), 0.0)
    names = {
        "mlops_router_requests_total": "requests",
        "mlops_router_cold_requests_total": "cold",
        "mlops_router_model_loads_total": "loads",
        "mlops_router_model_load_seconds_sum": "load_seconds",
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                out[names[sample.name]] += sample.value
    return out


def deploy_versions(env: dict[str, str], work: Path, versions: int, room: int) -> None:
    from mlops_cli.local.server import running_server

    mlops(env, "local", "up")
    running = running_server(work / ".mlops" / "local")
    assert running is not None, "the local Triton is not running"
    fleet = work / "fleet.json"
    server = {"name": "dyn", "url": running.http_url, "memory_mb": room * MODEL_MB}
    fleet.write_text(
        json.dumps(
            {
                "name": "dyn",
                "repository": str(running.model_repository),
                "servers": [{**server, "dynamic": True}],
            }
        )
    )
    for number in range(1, versions + 1):
        folder = work / f"answer-{number}"
        shutil.copytree(FIXTURE, folder)
        (folder / "weights" / "answer.txt").write_text(f"{number}\n")
        mlops(env, "register", str(folder))
        mlops(env, "deploy", f"answer@{number}", "--target", "triton", "--fleet", str(fleet),
              "--no-switch")  # fmt: skip
        mlops(env, "route", "set", f"t{number}", "answer", str(number))
        print(f"  deployed answer@{number}", end="\r", flush=True)


def send_trace(router_url: str, trace: list[int]) -> tuple[list[float], int, dict[str, float]]:
    """Send the trace in order; the send times (s from the first), failures, counter changes."""
    from tests.servers.router import RouterClient, answer_body, answer_of

    client = RouterClient(router_url)
    before = counters(client.get("/metrics")[2].decode())
    times: list[float] = []
    failed = 0
    start = time.monotonic()
    for version in trace:
        times.append(time.monotonic() - start)
        status, _, data = client.infer("answer", answer_body(), {"X-Tenant-Id": f"t{version + 1}"})
        if status != 200 or answer_of(data) != float(version + 1):
            failed += 1
    after = counters(client.get("/metrics")[2].decode())
    return times, failed, {k: after[k] - before[k] for k in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--room", type=int, default=10, help="models the server has memory for")
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from mlops_cli.placement.simulate import FleetModel, Trace, lru_hit_rate, simulate
    from tests.servers.router import RouterProcess

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-ondemand-"))
    env = {
        **os.environ,
        "MLOPS_WORKSPACE": str(work / ".mlops"),
        "MLOPS_REGISTRY": f"sqlite:///{work / 'registry.db'}",
        "MLOPS_STORE": f"file://{work / 'store'}",
    }
    trace = zipf_trace(args.versions, args.requests, args.seed)
    began = time.monotonic()
    try:
        deploy_versions(env, work, args.versions, args.room)
        setup_s = time.monotonic() - began
        with RouterProcess(env["MLOPS_REGISTRY"], "--trust-tenant-header") as router:
            times, failed, seen = send_trace(router.url, trace)
        trace_s = time.monotonic() - began - setup_s
    finally:
        subprocess.run([*MLOPS, "local", "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    sizes = [MODEL_MB] * args.versions
    measured = 1 - seen["cold"] / seen["requests"] if seen["requests"] else 0.0
    ideal = lru_hit_rate(trace, sizes, args.room * MODEL_MB)
    load_s = seen["load_seconds"] / seen["loads"] if seen["loads"] else 2.0
    replay = Trace(
        names=tuple(f"answer-v{n}" for n in range(1, args.versions + 1)),
        sizes_mb=tuple(sizes),
        times=times,
        models=trace,
    )
    fleet = FleetModel(server_memory_mb=args.room * MODEL_MB, servers=1, load_time_s=load_s)
    predicted = simulate(replay, fleet, policies=("random",)).outcome("random").hit_rate
    print(
        f"\nOn-demand loading: {args.versions} python-backend versions on one dynamic server "
        f"with room for {args.room}, Zipf {ZIPF}, {args.requests} requests sent sequentially "
        f"(seed {args.seed}); setup {setup_s:.0f} s, trace {trace_s:.0f} s"
    )
    print(
        f"  router counted {seen['requests']:.0f} requests, {seen['cold']:.0f} cold, "
        f"{seen['loads']:.0f} loads (mean load {load_s:.2f} s); failed requests {failed}"
    )
    print(f"  hit rate measured {measured:.1%}, ideal LRU {ideal:.1%}, simulator {predicted:.1%}")
    ideal_gap = abs(measured - ideal) * 100
    sim_gap = abs(measured - predicted) * 100
    verdicts = (
        (f"measured vs ideal LRU: {ideal_gap:.1f} points (<= {IDEAL_POINTS:g})", ideal_gap),
        (f"simulator vs measured: {sim_gap:.1f} points (<= {SIMULATOR_POINTS:g})", sim_gap),
    )
    ok = failed == 0
    for (text, gap), limit in zip(verdicts, (IDEAL_POINTS, SIMULATOR_POINTS), strict=True):
        ok = ok and gap <= limit
        print(f"  {'PASS' if gap <= limit else 'FAIL'} {text}")
    print(f"  {'PASS' if failed == 0 else 'FAIL'} no failed request ({failed})")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
