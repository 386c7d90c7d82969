"""``python -m mlops_cli.mme --workdir DIR [--port P] [--ready-file F] [--upstream-timeout-s S]``:
run mme-local in the foreground until SIGTERM/SIGINT (``mlops local up --mme`` runs it in the
background). Inference components are read from the SageMaker control plane that the standard
AWS configuration names."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from mlops_cli.mme.agent import Agent
from mlops_cli.mme.components import ComponentTable
from mlops_cli.mme.containers import Container, MMSContainer
from mlops_cli.mme.control_plane import SageMakerControlPlane
from mlops_cli.mme.server import UPSTREAM_TIMEOUT_S, MMEServer


def container_factory(workdir: Path) -> Callable[[str], Container]:
    """The containers mme-local starts on first use, one per backend, each in its own folder."""

    def make(backend: str) -> Container:
        if backend == "triton":
            from mlops_cli.mme.triton_container import TritonContainer

            return TritonContainer(workdir / "triton").start()
        return MMSContainer(workdir / "mms").start()

    return make


async def serve(
    agent: Agent,
    *,
    port: int,
    ready_file: Path | None,
    upstream_timeout_s: float = UPSTREAM_TIMEOUT_S,
) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    components = ComponentTable(agent, SageMakerControlPlane())
    server = MMEServer(agent, components, upstream_timeout_s=upstream_timeout_s)
    bound = await server.start("127.0.0.1", port)
    print(f"mme-local: serving on http://127.0.0.1:{bound}", flush=True)
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": bound}))
        tmp.replace(ready_file)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_cli.mme", description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--upstream-timeout-s", type=float, default=UPSTREAM_TIMEOUT_S)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    agent = Agent(args.workdir, container_factory(args.workdir))
    try:
        _run_loop(
            serve(
                agent,
                port=args.port,
                ready_file=args.ready_file,
                upstream_timeout_s=args.upstream_timeout_s,
            )
        )
    finally:
        agent.close()
    print("mme-local: stopped", flush=True)
    return 0


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(main)
        return
    uvloop.run(main)


if __name__ == "__main__":
    sys.exit(main())
