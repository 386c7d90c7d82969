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
    instances: int = 1  # the instance count measured (memory grows with it)
    # what the load added to the GPUs' memory (Triton's nv_gpu_memory_used_bytes); None on a
    # server without GPUs, or when the version was loaded already
    gpu_memory_mb: float | None = None

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
    """Load the version on the local server (unless it is there), measure the peak resident
    memory of its backend process (sampled while ``requests`` sequential requests synthesized
    from its signature run), their latency, and on a GPU server the GPU memory its load added;
    store them in the registry, and unload it again if it was loaded for this."""
    target.manager.up()
    desired = desired_state(version, open_store, target=target, device="cpu", allow_cpu=True)
    plan = target.plan(desired, [])
    loaded_here = plan.load
    metrics_url = _metrics_url(target)
    gpu_before = gpu_memory_used(metrics_url) if loaded_here else None
    detail = target.apply(plan, reporter=reporter)
    name = versioned_name(version.model, version.version)
    gpu_after = gpu_memory_used(metrics_url) if loaded_here else None
    try:
        rss = _rss(target, name)
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
                if len(latencies) % PEAK_SAMPLE_EVERY == 0:  # the peak, not the idle size
                    rss = max(rss, _rss(target, name))
        rss = max(rss, _rss(target, name))
    finally:
        if loaded_here:
            target.retire(version.model, version.version, detail, reporter=reporter)
    memory_mb = round(rss / 2**20, 1)
    gpu_memory_mb = (
        round(max(0.0, gpu_after - gpu_before) / 2**20, 1)
        if gpu_before is not None and gpu_after is not None
        else None
    )
    p50 = round(statistics.median(latencies), 3)
    p90 = round(statistics.quantiles(latencies, n=10)[-1], 3) if len(latencies) > 1 else p50
    registry.set_version_metrics(
        version.model,
        version.version,
        memory_mb=memory_mb,
        latency_ms=p50,
        gpu_memory_mb=gpu_memory_mb,
    )
    return ProfileResult(
        model=version.model,
        version=version.version,
        memory_mb=memory_mb,
        latency_ms=p50,
        p90_ms=p90,
        requests=requests,
        loaded_for_profile=loaded_here,
        instances=desired.spec.instances,
        gpu_memory_mb=gpu_memory_mb,
    )


PEAK_SAMPLE_EVERY = 10  # requests between samples of the backend's resident memory


def _rss(target: LocalTarget, name: str) -> int:
    return sum(m.rss_bytes for m in target.manager.status().models if m.name == name)


def _metrics_url(target: LocalTarget) -> str | None:
    state = target.manager.read_state()
    return None if state is None else f"http://127.0.0.1:{state.metrics_port}/metrics"


def gpu_memory_used(metrics_url: str | None) -> float | None:
    """Bytes of GPU memory in use on the server's GPUs, summed (Triton's
    ``nv_gpu_memory_used_bytes``); None when the server reports no GPU."""
    import urllib.request

    if metrics_url is None:
        return None
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as reply:
            text = reply.read(4 * 2**20).decode("utf-8", "replace")
    except OSError:
        return None
    return parse_gpu_memory_used(text)


def parse_gpu_memory_used(text: str) -> float | None:
    """The sum of ``nv_gpu_memory_used_bytes`` samples in a Prometheus text page (None: none)."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("nv_gpu_memory_used_bytes"):
            try:
                total += float(line.rsplit(" ", 1)[1])
                seen = True
            except (IndexError, ValueError):
                continue
    return total if seen else None
