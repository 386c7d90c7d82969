"""The state file of a managed local server: what mlops records when it starts one
(``<workspace>/local/<kind>.json``), and whether the process it names still runs.

A recorded pid counts only while a process with that pid *and that start time* lives, so a pid
reused by another program is never taken for the server. The file is written atomically by the
manager (:mod:`mlops_cli.local.manager`); readers here never lock and never clean up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlops_cli.local.processes import is_same_process

LOOPBACK = "127.0.0.1"
StateT = TypeVar("StateT", bound="ServerState")


@dataclass(frozen=True)
class ServerState:
    """What mlops records about a server it started (its state file)."""

    pid: int
    start_ticks: int  # the process's start time (/proc), so a reused pid is not trusted
    started_at: str
    log_path: str
    ports: Mapping[str, int] = field(default_factory=dict)  # role ("http", "grpc", ...) -> port
    extra: Mapping[str, str] = field(default_factory=dict)  # what its kind adds (repository...)

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['http']}"

    def to_json(self) -> bytes:
        document = asdict(self)
        document["ports"], document["extra"] = dict(self.ports), dict(self.extra)
        return json.dumps(document, indent=2).encode()

    @classmethod
    def from_json(cls: type[StateT], text: str | bytes) -> StateT:
        """Read a state file; ValueError or TypeError when it is not one. The flat form written
        by earlier versions (``http_port``, ``model_repository``, ... at the top) is read too, so a
        server started before an upgrade is still found."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a state file holds a JSON object")
        if "ports" not in data:
            data = _unflatten(data)
        return cls(
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            started_at=str(data["started_at"]),
            log_path=str(data["log_path"]),
            ports={str(role): int(port) for role, port in dict(data["ports"]).items()},
            extra={str(key): str(value) for key, value in dict(data.get("extra", {})).items()},
        )


_COMMON_KEYS = ("pid", "start_ticks", "started_at", "log_path")


def _unflatten(data: dict[str, Any]) -> dict[str, Any]:
    """The flat form: ``{"http_port": 1, "grpc_port": 2, "model_repository": "r", ...}`` ->
    ports ``{"http": 1, "grpc": 2}`` and extra ``{"model_repository": "r"}``; mme-local's one
    ``port`` is its HTTP port."""
    ports: dict[str, int] = {}
    extra: dict[str, str] = {}
    for key, value in data.items():
        if key in _COMMON_KEYS:
            continue
        if key == "port":
            ports["http"] = int(value)
        elif key.endswith("_port"):
            ports[key.removesuffix("_port")] = int(value)
        else:
            extra[key] = str(value)
    return {**{key: data[key] for key in _COMMON_KEYS}, "ports": ports, "extra": extra}


def read_running(path: Path, state_type: type[StateT]) -> StateT | None:
    """The state in ``path`` when its process runs now; None otherwise. Reads only (no lock, no
    clean-up): a dead server's state is left for its manager to clean."""
    try:
        state = state_type.from_json(path.read_text())
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return None
    return state if is_same_process(state.pid, state.start_ticks) else None


__all__ = ["LOOPBACK", "ServerState", "StateT", "read_running"]
