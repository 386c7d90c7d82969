"""Running the router: one event loop per worker process, N workers on one port.

Each worker is a whole router (its own table, refresher, heartbeat and router id) listening on
the same port with ``SO_REUSEPORT``, so the kernel spreads connections over them; the parent only
starts them, forwards SIGINT/SIGTERM and waits. With one worker the parent is the worker. State
lives in the registry alone, so replicas on other machines behind a load balancer are the same
thing as workers here.

A worker stops on SIGTERM or SIGINT: it stops accepting, lets requests in flight finish (at most
:data:`STOP_GRACE_S` seconds), and removes its heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypeVar

from mlops_cli.router.metrics import WORKERS_DIR_ENV, TenantLabelMode

STOP_GRACE_S = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class RouterOptions:
    """Everything a worker needs (JSON-serializable, handed to worker processes)."""

    registry: str
    host: str = "127.0.0.1"
    port: int = 8700
    workers: int = 1
    refresh_s: float = 0.25
    tenant_header: str = "X-Tenant-Id"
    trust_tenant_header: bool = False
    keys_file: str | None = None
    max_body_bytes: int = 6 * 1024 * 1024
    upstream_timeout_s: float = 60.0
    idle_timeout_s: float = 60.0
    tenant_label: str = "top:1000"


def serve(options: RouterOptions) -> int:
    """Run until stopped; the exit code (0 after a clean stop)."""
    if options.workers <= 1:
        return run_worker(options)
    return _run_workers(options)


def _run_workers(options: RouterOptions) -> int:
    # Hold the port (bound, not listening: it takes no connections) so that port 0 means one
    # port for every worker, and so that the port cannot be taken between worker starts.
    holder = _bind(options.host, options.port, reuse_port=True)
    port = holder.getsockname()[1]
    metrics_dir = tempfile.mkdtemp(prefix="mlops-router-metrics-")
    env = {**os.environ, WORKERS_DIR_ENV: metrics_dir}
    shared = replace(options, port=port, workers=options.workers)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "mlops_cli.router.serve", json.dumps(asdict(shared))], env=env
        )
        for _ in range(options.workers)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    holder.close()
    for leftover in Path(metrics_dir).iterdir():
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        os.rmdir(metrics_dir)
    return max((abs(code) for code in codes), default=0)


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_worker(options: RouterOptions) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(_worker(options))
    return uvloop.run(_worker(options))


async def _worker(options: RouterOptions) -> int:
    from mlops_cli.registry import open_registry
    from mlops_cli.router.auth import read_keys
    from mlops_cli.router.metrics import RouterMetrics
    from mlops_cli.router.refresh import Refresher
    from mlops_cli.router.service import RouterService, ServiceOptions, connection_class

    loop = asyncio.get_running_loop()
    keys = read_keys(Path(options.keys_file)) if options.keys_file else None
    registry = open_registry(options.registry)
    shared = os.environ.get(WORKERS_DIR_ENV)
    metrics = RouterMetrics(
        TenantLabelMode.parse(options.tenant_label),
        workers_dir=Path(shared) if shared else None,
    )
    refresher: Refresher | None = None

    def is_ready() -> bool:
        return refresher is not None and refresher.age() <= max(5.0, 20 * options.refresh_s)

    service = RouterService(
        ServiceOptions(
            tenant_header=options.tenant_header,
            trust_tenant_header=options.trust_tenant_header,
            keys=keys,
            upstream_timeout_s=options.upstream_timeout_s,
            idle_timeout_s=options.idle_timeout_s,
        ),
        metrics,
        is_ready=is_ready,
    )
    sock = _bind(options.host, options.port, reuse_port=True)
    connection = connection_class(options.max_body_bytes)
    server = await loop.create_server(lambda: connection(service), sock=sock, backlog=1024)
    port = sock.getsockname()[1]
    router_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def call_in_loop(function):  # type: ignore[no-untyped-def]
        import concurrent.futures

        future: concurrent.futures.Future[object] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:  # handed to the refresher thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future

    refresher = Refresher(
        registry,
        router_id=router_id,
        address=f"{options.host}:{port}",
        interval=options.refresh_s,
        call_in_loop=call_in_loop,
        apply=lambda table: service.apply(table, refresher.age() if refresher else 0.0),
        set_down=lambda urls: _soon(loop, service.set_down, urls),
    )
    refresher.start()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    sweeper = loop.create_task(_sweep_idle(service, stopping))
    print(
        f"mlops router: serving http://{options.host}:{port} as {router_id} "
        f"(registry {options.registry})",
        file=sys.stderr,
        flush=True,
    )
    await stopping.wait()
    server.close()
    deadline = time.monotonic() + STOP_GRACE_S
    while service.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    sweeper.cancel()
    await asyncio.to_thread(refresher.stop)
    service.close()
    return 0


def _soon(loop: asyncio.AbstractEventLoop, function: Callable[[T], None], value: T) -> None:
    loop.call_soon_threadsafe(function, value)


async def _sweep_idle(service: object, stopping: asyncio.Event) -> None:
    from mlops_cli.router.service import IDLE_SWEEP_S, RouterService

    assert isinstance(service, RouterService)
    while not stopping.is_set():
        await asyncio.sleep(IDLE_SWEEP_S)
        service.sweep_idle()


if __name__ == "__main__":  # a worker of `mlops router serve --workers N`
    sys.exit(run_worker(RouterOptions(**json.loads(sys.argv[1]))))
