"""Registry speed: warm-cache resolution, cold resolution reads on DynamoDB, register round trips.

Side by side in one process:

- Router with a warm cache (SQLite behind it) against resolving straight from SQLite each time;
  target: at least 200,000 resolves/s.
- A cold resolution on DynamoDB (moto server started here on 127.0.0.1): read requests counted
  from botocore's own events; target: at most 2.
- `register` on DynamoDB against a raw boto3 `put_item` on the same server; target: at most 3
  put_item round trips' worth of time (medians).

    python bench/registry.py [--resolves 300000] [--registers 40]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from typing import Any

from moto_loopback import moto_server


def warm_resolution(count: int) -> tuple[float, float, float]:
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.base import NewVersion
    from mlops_cli.registry.routing import Router, resolve

    registry = open_registry(f"sqlite:///{tempfile.mkdtemp()}/registry.db")
    registry.init()
    registry.register_version("iris", NewVersion("a" * 64, "file:///p1"), alias="production")
    registry.register_version("iris", NewVersion("b" * 64, "file:///p2"))
    registry.set_route("acme", "iris", version=1, canary_version=2, canary_percent=10)
    router = Router(registry, ttl=3600)
    keys = [f"request-{i}" for i in range(count)]
    router.resolve("acme", "iris", "warm-up")

    start = time.perf_counter()
    for key in keys:
        router.resolve("acme", "iris", key)
    canary_rate = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in keys:
        router.resolve("globex", "iris")
    plain_rate = count / (time.perf_counter() - start)
    uncached = min(count, 5000)
    start = time.perf_counter()
    for key in keys[:uncached]:
        resolve(registry, "acme", "iris", key)
    direct_rate = uncached / (time.perf_counter() - start)
    return canary_rate, plain_rate, direct_rate


def dynamodb(registers: int) -> dict[str, Any]:
    stack = contextlib.ExitStack()
    endpoint = stack.enter_context(moto_server())
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    try:
        from mlops_cli import aws
        from mlops_cli.registry import open_registry
        from mlops_cli.registry.base import NewVersion

        aws.reset_clients()
        registry = open_registry("dynamodb://mlops-bench")
        registry.init()
        registry.register_version("iris", NewVersion("0" * 64, "s3://b/p0"), alias="production")
        registry.set_route("acme", "iris", alias="production")

        client = aws.client("dynamodb")
        calls: list[str] = []
        client.meta.events.register(
            "before-call.dynamodb", lambda model, **_: calls.append(model.name)
        )
        registry.routing_state("acme", "iris")  # route -> alias: the longest path
        route_reads = list(calls)  # routing_state only reads: every request counts
        calls.clear()
        registry.routing_state("globex", "iris")  # no route -> default alias
        alias_reads = list(calls)

        put_times, register_times = [], []
        for index in range(registers):
            start = time.perf_counter()
            client.put_item(
                TableName="mlops-bench",
                Item={"PK": {"S": f"BENCH#{index}"}, "SK": {"S": "X"}, "n": {"N": str(index)}},
            )
            put_times.append(time.perf_counter() - start)
            calls.clear()
            start = time.perf_counter()
            registry.register_version(
                "iris", NewVersion(f"{index + 1:064x}", f"s3://b/p{index + 1}")
            )
            register_times.append(time.perf_counter() - start)
        register_calls = len(calls)
        return {
            "route_reads": route_reads,
            "alias_reads": alias_reads,
            "put_ms": statistics.median(put_times) * 1000,
            "register_ms": statistics.median(register_times) * 1000,
            "register_calls": register_calls,
        }
    finally:
        stack.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolves", type=int, default=300_000)
    parser.add_argument("--registers", type=int, default=40)
    args = parser.parse_args()

    canary, plain, direct = warm_resolution(args.resolves)
    print(f"warm Router, canary route        {canary:12,.0f} resolves/s")
    print(f"warm Router, default alias       {plain:12,.0f} resolves/s")
    print(
        f"baseline: SQLite each time       {direct:12,.0f} resolves/s   (Router {canary / direct:.0f}x faster)"
    )
    dyn = dynamodb(args.registers)
    print(
        f"cold DynamoDB resolve, route->alias: {len(dyn['route_reads'])} reads {dyn['route_reads']}"
    )
    print(
        f"cold DynamoDB resolve, default alias: {len(dyn['alias_reads'])} reads {dyn['alias_reads']}"
    )
    ratio = dyn["register_ms"] / dyn["put_ms"]
    print(
        f"register {dyn['register_ms']:.2f} ms ({dyn['register_calls']} requests) vs put_item "
        f"{dyn['put_ms']:.2f} ms (medians of {args.registers}): {ratio:.2f} round trips"
    )
    checks = [
        ("warm resolves/s (canary route)", canary, ">=", 200_000),
        (
            "cold DynamoDB reads (max)",
            max(len(dyn["route_reads"]), len(dyn["alias_reads"])),
            "<=",
            2,
        ),
        ("register / put_item time", ratio, "<=", 3),
    ]
    print(f"\n{time.strftime('%Y-%m-%d')}")
    for name, value, op, target in checks:
        ok = value >= target if op == ">=" else value <= target
        print(f"{name:34s} {value:12,.2f}   target {op} {target:<8,} {'ok' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
