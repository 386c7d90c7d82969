"""`mlops profile`: measure a version's memory and latency on the local server, for placement."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mlops_cli.deploy.base import InvokeRequest
from mlops_cli.deploy.engine import desired_state
from mlops_cli.deploy.local import LocalTarget
from mlops_cli.deploy.triton import TritonDetail, invoke_triton
from mlops_cli.errors import ServerError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.registry.base import Registry, VersionRecord
from mlops_cli.stores.base import ArtifactStore
from mlops_cli.triton.codec import signature_of, synthesize, values_of
from mlops_cli.triton.naming import versioned_name


@dataclass(frozen=True)
class ProfileResult:
    model: str
    version: int
    memory_mb: float
    latency_ms: float
    p90_ms: float
    requests: int
    loaded_for_profile: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile(
    registry: Registry,
    version: VersionRecord,
    open_store: Callable[[str | None], ArtifactStore],
    target: LocalTarget,
    *,
    requests: int = 50,
    reporter: Reporter = SILENT,
) -> ProfileResult:
    """Load the version on the local server (unless it is there), measure the resident memory of
    its backend process and the latency of ``requests`` sequential requests synthesized from its
    signature, store both in the registry, and unload it again if it was loaded for this."""
    target.manager.up()
    desired = desired_state(version, open_store, target=target, device="cpu", allow_cpu=True)
    plan = target.plan(desired, [])
    loaded_here = plan.load
    detail = target.apply(plan, reporter=reporter)
    name = versioned_name(version.model, version.version)
    try:
        observed = target.manager.status()
        rss = sum(m.rss_bytes for m in observed.models if m.name == name)
        if not rss:
            raise ServerError(f"could not find the backend process of {name} to measure it")
        (tensors,) = synthesize(signature_of(desired.spec))
        request = InvokeRequest(
            inputs=values_of(tensors), spec=desired.spec, stream=desired.spec.streaming
        )
        # the running server, found once: each request then measures only the request
        served = TritonDetail(
            where=detail.where,
            triton_name=detail.triton_name,
            servers=(detail.serving(version.model, version.version),),
        )
        latencies = []
        with running(reporter, f"profiling {name}", total=requests, unit="requests") as task:
            for _ in range(requests):
                started = time.perf_counter()
                for _chunk in invoke_triton(version.model, version.version, served, request):
                    pass
                latencies.append((time.perf_counter() - started) * 1000)
                task.advance()
    finally:
        if loaded_here:
            target.retire(version.model, version.version, detail, reporter=reporter)
    memory_mb = round(rss / 2**20, 1)
    p50 = round(statistics.median(latencies), 3)
    p90 = round(statistics.quantiles(latencies, n=10)[-1], 3) if len(latencies) > 1 else p50
    registry.set_version_metrics(
        version.model, version.version, memory_mb=memory_mb, latency_ms=p50
    )
    return ProfileResult(
        model=version.model,
        version=version.version,
        memory_mb=memory_mb,
        latency_ms=p50,
        p90_ms=p90,
        requests=requests,
        loaded_for_profile=loaded_here,
    )
