"""Bench: `mlops placement simulate` on 100,000 models x 1,000,000 requests (target: under 60 s).

    .venv/bin/python bench/placement_simulate.py [--models N] [--requests N] [--servers N]

Prints each run's figures as JSON lines: the fleet that holds every model (one server failing),
and an overcommitted fleet of a tenth of that (on-demand loading with eviction).
"""

from __future__ import annotations

import argparse
import json
import time

from mlops_cli.placement.simulate import FleetModel, Workload, generate_trace, simulate

SERVER_MB = 24 * 1024


def run(models: int, requests: int, servers: int | None, fail: int) -> dict[str, object]:
    started = time.perf_counter()
    workload = Workload(
        models=models, requests=requests, size_median_mb=300, size_sigma=1.0, zipf=1.1, rate=2000
    )
    trace = generate_trace(workload, max_size_mb=SERVER_MB)
    fleet = FleetModel(server_memory_mb=SERVER_MB, servers=servers, fail_servers=fail)
    result = simulate(trace, fleet)
    return {**result.to_dict(), "seconds": round(time.perf_counter() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--servers", type=int, default=None)
    args = parser.parse_args()
    full = run(args.models, args.requests, args.servers, fail=1)
    print(json.dumps(full))
    assert full["seconds"] < 60, "the simulator's target is under 60 s"  # type: ignore[operator]
    tenth = max(1, int(full["servers_needed"]) // 10)  # type: ignore[call-overload]
    print(json.dumps(run(args.models, args.requests, tenth, fail=0)))


if __name__ == "__main__":
    main()
