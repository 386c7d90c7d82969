"""Fleet files: the Triton servers of a ``triton`` target and the repository they share.

A fleet file (``schemas/fleet.schema.json``) names the fleet, its repository (a folder, relative
to the file, or ``s3://bucket/prefix``) and each server: URL, gRPC address, memory capacity and
headroom, GPUs (kind, count, memory of each), labels (``zone`` among them), and whether it loads
models on demand (``dynamic``). :func:`load_fleet` validates it into a frozen :class:`Fleet`;
errors name the file and the key. Two servers may not share a name or a URL: a server listed
twice would be counted twice by placement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlops_cli.aws.s3_location import S3Location
from mlops_cli.deploy.triton import ServerAddress
from mlops_cli.errors import UsageError, ValidationError
from mlops_cli.triton.client import TritonClient
from mlops_cli.validation import read_yaml_file, validate_document

DEFAULT_LOAD_TIMEOUT = 300.0


class FleetFileError(ValidationError):
    """A fleet file that is not valid."""


@dataclass(frozen=True)
class FleetServer:
    name: str
    url: str
    grpc_url: str = ""
    memory_mb: float = 0.0
    gpu_kind: str | None = None
    gpu_count: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    gpu_memory_mb: float = 0.0  # of each GPU; 0: not declared
    headroom_mb: float = 0.0  # kept free of models
    dynamic: bool = False  # loads models on demand, holds more than fit loaded at once

    def client(self) -> TritonClient:
        return TritonClient(self.url, name=self.name)

    def address(self) -> ServerAddress:
        capacity = self.memory_mb - self.headroom_mb if self.dynamic else None
        return ServerAddress(self.name, self.url, self.grpc_url, capacity)


@dataclass(frozen=True)
class Fleet:
    name: str
    repository: str  # a folder path, or s3://bucket/prefix
    servers: tuple[FleetServer, ...]
    load_timeout: float = DEFAULT_LOAD_TIMEOUT


def load_fleet(path: Path) -> Fleet:
    """Read and validate a fleet file (``schemas/fleet.schema.json``)."""
    missing = FleetFileError(f"fleet file {path} does not exist")
    data = read_yaml_file(path, error_class=FleetFileError, missing=missing) or {}
    validate_document(data, "fleet", source=str(path), error_class=FleetFileError)
    servers = []
    for index, entry in enumerate(data["servers"]):
        gpu = entry.get("gpu") or {}
        servers.append(
            FleetServer(
                name=entry.get("name") or f"server-{index}",
                url=entry["url"].rstrip("/"),
                grpc_url=entry.get("grpc_url", ""),
                memory_mb=float(entry["memory_mb"]),
                gpu_kind=gpu.get("kind"),
                gpu_count=int(gpu.get("count", 1)) if gpu else 0,
                labels=dict(entry.get("labels", {})),
                gpu_memory_mb=float(gpu.get("memory_mb", 0)),
                headroom_mb=float(entry.get("headroom_mb", 0)),
                dynamic=bool(entry.get("dynamic", False)),
            )
        )
    _refuse_duplicates(servers, source=str(path))
    repository = str(data["repository"])
    if repository.startswith("s3://"):
        try:
            repository = S3Location.parse(repository).uri
        except UsageError as exc:
            raise FleetFileError(exc.message, source=str(path), key_path="repository") from None
    else:
        repository = str((path.parent / repository).resolve())
    return Fleet(
        name=data["name"],
        repository=repository,
        servers=tuple(servers),
        load_timeout=float(data.get("load_timeout", DEFAULT_LOAD_TIMEOUT)),
    )


def _refuse_duplicates(servers: list[FleetServer], *, source: str) -> None:
    """Two servers with one name, or one URL (scheme and host compared without case)."""
    names: dict[str, int] = {}
    urls: dict[str, int] = {}
    for index, server in enumerate(servers):
        if server.name in names:
            raise FleetFileError(
                f"server name {server.name!r} appears twice (servers[{names[server.name]}] and "
                f"servers[{index}])",
                source=source,
            )
        names[server.name] = index
        url = server.url.lower()
        if url in urls:
            first = servers[urls[url]].name
            raise FleetFileError(
                f"servers {first!r} and {server.name!r} have the same URL {server.url}",
                source=source,
                key_path=f"servers[{index}].url",
                hint="list each server once",
            )
        urls[url] = index


__all__ = ["DEFAULT_LOAD_TIMEOUT", "Fleet", "FleetFileError", "FleetServer", "load_fleet"]
