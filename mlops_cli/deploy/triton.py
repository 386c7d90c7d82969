"""What the Triton targets (local, fleet) make of the protocol: their placement detail
(:class:`TritonDetail`: which servers serve a version, under which name), sending a request to a
recorded deployment, and reading a served model's config and statistics the way ``mlops status``
reports them.

The protocol itself (client, KServe v2 codec, ``<model>-v<version>`` names) is
:mod:`mlops_cli.triton`; this module only adds what a deployment record means.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_cli.deploy.base import Chunk, InvokeRequest
from mlops_cli.errors import ServerError, UsageError
from mlops_cli.registry.records import DeploymentRecord
from mlops_cli.render.triton import MEMORY_PARAMETER
from mlops_cli.triton.client import InferenceCounts, TritonClient
from mlops_cli.triton.codec import Tensor, encode_inputs, signature_of
from mlops_cli.triton.naming import versioned_name


def recorded_memory_mb(config: Mapping[str, Any]) -> float:
    """The memory mlops recorded in a loaded model's config (0 when absent)."""
    parameters = config.get("parameters") or {}
    value = (parameters.get(MEMORY_PARAMETER) or {}).get("string_value", "0")
    try:
        return float(value)
    except ValueError:
        return 0.0


def warmup_requests(config: Mapping[str, Any]) -> int:
    """How many requests Triton sends a model on its own at load (its ``model_warmup`` samples,
    each ``count`` times, default once, on every instance). Its statistics count them as
    successful requests."""
    samples = sum(
        max(1, int(sample.get("count") or 0))
        for sample in config.get("model_warmup") or []
        if isinstance(sample, Mapping)
    )
    instances = sum(
        max(1, int(group.get("count") or 0))
        for group in config.get("instance_group") or []
        if isinstance(group, Mapping)
    )
    return samples * max(1, instances)


def usage(
    counts: InferenceCounts | None, *, warmup: int = 0
) -> tuple[int | None, int | None, float | None]:
    """(requests, failed requests, mean latency ms) from Triton's model statistics, less the
    ``warmup`` requests Triton made itself. Triton keeps one latency total, so the mean still
    includes the warmup's time; it is None while only warmup has been served."""
    if counts is None:
        return None, None, None
    count = max(0, counts.success - warmup)
    mean = counts.success_ns / counts.success / 1e6 if count and counts.success else None
    return count, counts.failures, mean


@dataclass(frozen=True)
class ServerAddress:
    """One Triton server a deployment is on: its fleet name, HTTP URL and gRPC address."""

    name: str
    url: str = ""
    grpc_url: str = ""
    # A dynamic server (fleet file ``dynamic: true``) loads models on demand: the memory it
    # has for models, so that the router evicts to make room; None for a server that keeps
    # what is deployed loaded.
    capacity_mb: float | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "url": self.url, "grpc_url": self.grpc_url}
        if self.capacity_mb is not None:
            data["capacity_mb"] = self.capacity_mb
        return data


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TritonDetail:
    """Where a Triton target (a fleet, or the local server) serves a version: the servers that
    loaded it, the name it has there, the repository it was written to; the device and memory
    it was placed with when this deploy loaded it (absent when it adopted a loaded model)."""

    where: str
    triton_name: str
    servers: tuple[ServerAddress, ...] = ()
    repository: str = ""
    device: str | None = None
    memory_mb: float | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "where": self.where,
            "triton_name": self.triton_name,
            "servers": [server.to_dict() for server in self.servers],
            "repository": self.repository,
        }
        if self.device is not None:
            data["device"] = self.device
        if self.memory_mb is not None:
            data["memory_mb"] = self.memory_mb
        return data

    @classmethod
    def fields_of(cls, record: DeploymentRecord) -> dict[str, Any]:
        """The fields of this type in ``record``'s stored detail (defaults for absent ones)."""
        detail = record.detail
        servers = detail.get("servers")
        memory = detail.get("memory_mb")
        return {
            "where": str(detail.get("where") or ""),
            "triton_name": str(
                detail.get("triton_name") or versioned_name(record.model, record.version)
            ),
            "servers": tuple(
                ServerAddress(
                    name=str(entry.get("name", "")),
                    url=str(entry.get("url", "")),
                    grpc_url=str(entry.get("grpc_url", "")),
                    capacity_mb=_number(entry.get("capacity_mb")),
                )
                for entry in (servers if isinstance(servers, list) else [])
                if isinstance(entry, Mapping)
            ),
            "repository": str(detail.get("repository") or ""),
            "device": str(detail["device"]) if detail.get("device") else None,
            "memory_mb": _number(memory),
        }

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> TritonDetail:
        return cls(**cls.fields_of(record))

    def serving(self, model: str, version: int) -> ServerAddress:
        """The server that answers requests for ``model`` v``version`` (the first that loaded
        it). ServerError when the record names none."""
        if not self.servers:
            raise ServerError(f"the deployment record of {model} v{version} names no server")
        return self.servers[0]


def invoke_triton(
    model: str, version: int, detail: TritonDetail, request: InvokeRequest
) -> Iterator[Chunk]:
    """One request to ``model`` v``version`` where ``detail`` places it."""
    server = detail.serving(model, version)
    name = detail.triton_name
    tensors = encode_inputs(signature_of(request.spec), request.inputs, model=request.spec.name)
    if request.stream and not request.spec.streaming:
        raise UsageError(f"{model} does not stream", hint="drop --stream")
    if not request.stream and request.spec.streaming:
        raise UsageError(f"{model} streams its answer", hint="add --stream")
    if request.protocol == "grpc":
        return _grpc(server.grpc_url, name, request, tensors)
    client = TritonClient(server.url)
    if request.stream:
        answers = client.generate_stream(name, tensors, timeout=request.timeout)
        return (Chunk(outputs, time.monotonic()) for outputs in answers)
    return _once(lambda: client.infer(name, tensors, timeout=request.timeout))


def _once(call: Callable[[], dict[str, Any]]) -> Iterator[Chunk]:
    yield Chunk(call(), time.monotonic())


def _grpc(
    url: str, name: str, request: InvokeRequest, tensors: Sequence[Tensor]
) -> Iterator[Chunk]:
    from mlops_cli.triton.grpc_client import TritonGrpcClient

    outputs = [t.name for t in request.spec.outputs]
    with TritonGrpcClient(url) as client:
        if request.stream:
            for answer in client.stream(name, tensors, outputs=outputs, timeout=request.timeout):
                yield Chunk(answer, time.monotonic())
        else:
            yield Chunk(
                client.infer(name, tensors, outputs=outputs, timeout=request.timeout),
                time.monotonic(),
            )


__all__ = [
    "ServerAddress",
    "TritonDetail",
    "invoke_triton",
    "recorded_memory_mb",
    "usage",
    "warmup_requests",
]
