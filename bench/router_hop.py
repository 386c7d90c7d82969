"""Part 2 of the router benchmark: the hop's own cost, the router against nginx.

One trivial upstream (nginx, ``return 200`` with a small KServe-like JSON body) on one port;
nginx ``proxy_pass`` to it, with upstream keep-alive, on another; the router in front of the same
upstream (a registry with one model ``m``, v1 recorded as deployed on a Triton "server" that is
that upstream, ``@production`` -> 1). Each proxy gets the same `mlops perftest` run in turn (8
connections, the same request count, the same POST with ``X-Tenant-Id: t1``), and the CPU its
processes used over that run (``/proc/PID/stat``: the nginx master and worker; the router's one
worker process, its refresh thread included) is divided by the requests answered. Each round also
runs both at a fixed 2,000 req/s (no target): at a moderate load every request wakes the proxy on
its own, and the fixed cost of a wake-up weighs more than at saturation, where they batch.

``--profile`` then runs one more router under cProfile behind the same load and prints the
functions where its time goes (cProfile slows Python code roughly twofold: read the shares, not
the absolute figures).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType

from router_load import (
    LoadResult,
    Verdict,
    children_of,
    median_of,
    perftest,
    print_verdicts,
    watched,
)
from router_profile import profile_router

CONNECTIONS = 8
BODY = '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[0.0]}]}'
ANSWER = '{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1.0]}]}'
TARGET_RATIO = 3.0
FIXED_RATE = 2_000  # req/s: a moderate load, where each request wakes the proxy on its own
FIXED_SECONDS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} in time")


class Nginx:
    """nginx in the foreground (``daemon off``, a master and one worker) with a config of its own
    in ``folder``, serving ``location`` on a free loopback port; stopped by its pid."""

    def __init__(self, folder: Path, location: str, *, http_extra: str = "") -> None:
        self.folder = folder
        self.location = location
        self.http_extra = http_extra
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        temp = " ".join(
            f"{kind}_temp_path {self.folder / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            "daemon off; master_process on; worker_processes 1;\n"
            f"pid {self.folder / 'nginx.pid'}; error_log {self.folder / 'error.log'};\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; {temp}\n{self.http_extra}\n"
            f"  server {{ listen 127.0.0.1:{self.port}; location / {{ {self.location} }} }}\n}}\n"
        )

    def __enter__(self) -> Nginx:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(self.config())
        command = ["nginx", "-e", str(self.folder / "error.log"), "-c", str(conf)]
        self.process = subprocess.Popen([*command, "-p", str(self.folder)])
        wait_for_port(self.port, self.process, "nginx")
        return self

    def pids(self) -> list[int]:
        assert self.process is not None
        return [self.process.pid, *children_of(self.process.pid)]

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


def nginx_proxy(folder: Path, port: int) -> Nginx:
    """nginx ``proxy_pass`` to ``127.0.0.1:port``, with keep-alive connections to it."""
    return Nginx(
        folder,
        'proxy_pass http://upstream; proxy_http_version 1.1; proxy_set_header Connection "";',
        http_extra=f"  upstream upstream {{ server 127.0.0.1:{port}; keepalive 32; }}",
    )


def record_model(registry_uri: str, upstream_url: str) -> None:
    """Model ``m`` v1, ``@production`` -> 1, recorded as served by ``upstream_url``."""
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.records import NewVersion

    registry = open_registry(registry_uri)
    registry.init()
    registry.register_version(
        "m", NewVersion("sha256:bench", "file:///bench/m"), alias="production"
    )
    server = {"name": "s", "url": upstream_url}
    detail = {"where": "bench", "triton_name": "m", "servers": [server]}
    registry.record_deployment("m", 1, "triton:bench", detail=detail)


def load(port: int, requests: int, *pace: str) -> LoadResult:
    """The run every proxy gets: ``requests`` POSTs, on 8 connections unless ``pace`` says
    otherwise (``--rate N``), and no warm-up (the CPU is read around the whole run, so every
    request sent is counted)."""
    return perftest(
        f"http://127.0.0.1:{port}/v2/models/m/infer",
        "--protocol", "http-json", "--header", "X-Tenant-Id:t1", "--template", BODY,
        "--requests", str(requests), "--warmup", "0s",
        *(pace or ("--concurrency", str(CONNECTIONS))),
    )  # fmt: skip


def hop_part(requests: int, rounds: int, *, profile: bool) -> None:
    if shutil.which("nginx") is None:
        print(
            "\nPart 2 (hop cost vs nginx): skipped, nginx is not installed (apt-get install nginx)"
        )
        return
    from tests.servers.router import RouterProcess

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-router-hop-"))
    upstream = Nginx(work / "upstream", f"default_type application/json; return 200 '{ANSWER}';")
    proxy = nginx_proxy(work / "proxy", upstream.port)
    registry = f"sqlite:///{work / 'registry.db'}"
    record_model(registry, f"http://127.0.0.1:{upstream.port}")
    paces: dict[str, tuple[int, tuple[str, ...]]] = {
        f"{CONNECTIONS} connections": (requests, ()),
        f"fixed {FIXED_RATE:,} req/s": (FIXED_RATE * FIXED_SECONDS, ("--rate", str(FIXED_RATE))),
    }
    runs: dict[tuple[str, str], list[LoadResult]] = {}
    profiled = ""
    try:
        with upstream, proxy, RouterProcess(registry, "--trust-tenant-header") as router:
            assert router.process is not None
            router_pid = router.process.pid
            contenders: dict[str, tuple[int, Callable[[], Sequence[int]]]] = {
                "nginx": (proxy.port, proxy.pids),
                "router": (router.port, lambda: [router_pid]),
            }
            for port, _ in contenders.values():
                load(port, 2_000)  # connections open, code paths warm
            for turn in range(rounds):
                for name in ("nginx", "router") if turn % 2 == 0 else ("router", "nginx"):
                    port, pids = contenders[name]
                    for pace, (count, args) in paces.items():
                        result = watched(partial(load, port, count, *args), {"proxy": pids})
                        runs.setdefault((pace, name), []).append(result)
            if profile:
                profiled = profile_router(
                    work / "router.prof", registry, lambda port: load(port, requests)
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_hop(runs, list(paces), requests)
    print(profiled, flush=True)


def report_hop(
    runs: dict[tuple[str, str], list[LoadResult]], paces: list[str], requests: int
) -> None:
    print(
        f"\nPart 2: the hop's own cost; {requests:,} requests a run on {CONNECTIONS} connections,"
        f" {FIXED_RATE * FIXED_SECONDS:,} a run at the fixed rate"
    )
    ratios: dict[str, float] = {}
    medians: dict[tuple[str, str], float] = {}
    for pace in paces:
        print(f"  {pace}:")
        for name in ("nginx", "router"):
            found = runs[pace, name]
            cpu = [r.cpu_us["proxy"] for r in found]
            medians[pace, name] = statistics.median(cpu)
            print(
                f"    {name:<6} CPU us/request {', '.join(f'{v:.1f}' for v in cpu)}"
                f"   req/s {', '.join(f'{r.rps:,.0f}' for r in found)}"
                f"   p50 ms {median_of(found, 'p50_ms'):.3f}"
            )
        ratios[pace] = medians[pace, "router"] / medians[pace, "nginx"]
    closed, fixed = paces
    errors = sum(r.errors for found in runs.values() for r in found)
    print_verdicts(
        f"Part 2 verdicts ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
        [
            Verdict("nginx CPU per request", f"{medians[closed, 'nginx']:.1f} us", "-", None),
            Verdict("router CPU per request", f"{medians[closed, 'router']:.1f} us", "-", None),
            Verdict(
                "router / nginx CPU",
                f"{ratios[closed]:.2f}x",
                f"<= {TARGET_RATIO:g}x",
                ratios[closed] <= TARGET_RATIO,
            ),
            Verdict(f"the same, {fixed}", f"{ratios[fixed]:.2f}x", "(no target)", None),
            Verdict("failed requests", f"{errors}", "0", errors == 0),
        ],
    )
