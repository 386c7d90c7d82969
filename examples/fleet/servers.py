"""Start and stop the example's Triton servers: each a real tritonserver (the one the `triton`
extra bundles) under a folder of its own, all loading from one shared model repository, with
explicit model control, as a fleet's servers are started.

    python servers.py up   --root DIR --repository REPO a b    # one line per server:
                                                                # NAME PID HTTP_URL GRPC_URL
    python servers.py down --root DIR a b                       # each stopped by its recorded pid

Ports are free ones on 127.0.0.1. ``down`` stops a server by the pid its state file recorded
(SIGTERM, then SIGKILL after 15 s) together with the python backend processes it started, and
is a no-op for a server that is not running. The servers are mlops' own local-server manager
(``mlops_cli.local.LocalTriton``), pointed at the shared repository instead of a workspace's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlops_cli.config import resolve_settings
from mlops_cli.local import LocalTriton
from mlops_cli.workspace import Workspace


def server(root: Path, name: str, repository: Path | None = None) -> LocalTriton:
    folder = root / name
    settings = resolve_settings(cwd=root, environ={}, set_pairs=[f"workspace={folder}"])
    return LocalTriton(Workspace(folder), settings.local, model_repository=repository)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("names", nargs="+", help="the servers' names (as in fleet.yaml)")
    parser.add_argument("--root", type=Path, required=True, help="a folder per server under it")
    parser.add_argument("--repository", type=Path, help="the shared model repository (up)")
    args = parser.parse_args()
    if args.action == "up":
        if args.repository is None:
            parser.error("up needs --repository")
        for name in args.names:
            manager = server(args.root.resolve(), name, args.repository.resolve())
            manager.up()
            state = manager.read_state()
            assert state is not None
            print(name, state.pid, state.http_url, f"127.0.0.1:{state.grpc_port}", flush=True)
    else:
        for name in args.names:
            server(args.root.resolve(), name).down()


if __name__ == "__main__":
    main()
