"""``python -m mlops_cli.mme --workdir DIR [--port P] [--ready-file F]``: run mme-local in the
foreground until SIGTERM/SIGINT (``mlops local up --mme`` runs it in the background)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from mlops_cli.mme.agent import Agent
from mlops_cli.mme.containers import Container, MMSContainer
from mlops_cli.mme.server import MMEServer


def container_factory(workdir: Path, triton_url: str | None) -> Callable[[str], Container]:
    def make(backend: str) -> Container:
        if backend == "triton":
            from mlops_cli.mme.triton_container import TritonContainer

            return TritonContainer.connect(triton_url, workdir=workdir / "triton")
        return MMSContainer(workdir / "mms").start()

    return make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_cli.mme", description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--triton-url", help="the Triton backend (default: the workspace's)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    agent = Agent(args.workdir, container_factory(args.workdir, args.triton_url))
    server = MMEServer(("127.0.0.1", args.port), agent)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    port = server.server_address[1]
    print(f"mme-local: serving on http://127.0.0.1:{port}", flush=True)
    if args.ready_file is not None:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": port}))
        tmp.replace(args.ready_file)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    agent.close()
    print("mme-local: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
