"""One step's figures, from the windows its workers recorded: throughput, latency percentiles,
errors by kind, streaming metrics, per-window series, requests per model (and per served version
when names are followed through their routing or the router says which version answered),
requests per tenant (sent through the router), each model's latency split between cold requests
(they waited for an on-demand load) and warm ones where the target reports loads, and the
generator's own cost.

A latency is only ever measured on a successful answer: where there is none (a step, a window or
a model whose every request failed) the latency is None (``null`` in JSON, n/a on screen), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_cli.perf.histogram import Histogram
from mlops_cli.perf.windows import WindowStats

if TYPE_CHECKING:
    from mlops_cli.perf.engine import StepRecord
    from mlops_cli.perf.load_options import LoadOptions

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9))
# The open loop kept its rate when at least this share of the requested rate was sent...
RATE_KEPT = 0.98
# ...and 99% of requests left within this many milliseconds of their intended time.
LAG_LIMIT_MS = 10.0
# The closed loop's generator is suspect when it kept a core this busy.
CPU_BUSY = 0.85


def _ms(hist: Histogram, extra: bool = True) -> dict[str, float]:
    out = {name: hist.percentile(p) / 1000 for name, p in PERCENTILES}
    if extra:
        out.update(max=hist.max / 1000, min=hist.min / 1000, mean=round(hist.mean() / 1000, 4))
    return out


def summarize_step(
    *,
    label: str,
    level: float,
    options: LoadOptions,
    records: Sequence[StepRecord],
    last_window: int | None,
    models: list[str],
    stream: bool,
    tenants: Sequence[str] = (),
) -> dict[str, Any]:
    keep = last_window + 1 if last_window is not None else None
    merged: dict[int, WindowStats] = {}
    for record in records:
        for window in record.windows[:keep]:
            merged.setdefault(window.index, WindowStats(window.index)).merge(window)
    windows = [merged[i] for i in sorted(merged)]
    total = WindowStats(-1)
    for window in windows:
        total.merge(window)
    aborted = next((r.aborted for r in records if r.aborted), None)
    if keep is not None:
        measured_s = keep * options.window_s
    else:
        measured_s = max((r.measured_ns for r in records), default=0) / 1e9
    measured_s = max(measured_s, 1e-9)
    errors = total.error_count
    requests = total.ok + errors
    waited_long = sum(r.waited_long for r in records)
    sent = sum(r.sent for r in records)
    cpu_s = sum(r.cpu_ns for r in records) / 1e9
    warnings: list[str] = []
    generator: dict[str, Any] = {
        "workers": len(records),
        "cpu_us_per_request": round(cpu_s * 1e6 / sent, 2) if sent else 0.0,
        "cpu_cores_busy": round(cpu_s / (measured_s + options.warmup_s) / max(1, len(records)), 3),
        "rate_sustained": True,
        "send_lag_ms": None,
    }
    offered = None
    if options.mode == "open":
        offered = level
        send_rate = requests / measured_s
        lag = _ms(total.lag, extra=False) | {"max": total.lag.max / 1000}
        generator["send_lag_ms"] = lag
        generator["send_rate_rps"] = round(send_rate, 2)
        generator["waited_for_connection"] = waited_long
        if send_rate < RATE_KEPT * level or lag["p99"] > LAG_LIMIT_MS:
            generator["rate_sustained"] = False
            warnings.append(
                f"the generator could not sustain {level:g} req/s: it sent {send_rate:.0f} req/s, "
                f"p99 send lag {lag['p99']:.1f} ms (use --workers, or a lower rate)"
            )
        elif waited_long > (1 - RATE_KEPT) * max(requests, 1):
            generator["rate_sustained"] = False
            warnings.append(
                f"the generator could not sustain {level:g} req/s: {waited_long} requests waited "
                f"over {LAG_LIMIT_MS:g} ms for one of its connections (raise --max-connections, "
                "or the server is saturated)"
            )
    elif generator["cpu_cores_busy"] >= CPU_BUSY:
        warnings.append(
            f"the generator kept {generator['cpu_cores_busy']:.0%} of a core busy per worker and "
            "may itself limit throughput (use --workers)"
        )
    step: dict[str, Any] = {
        "label": label,
        "mode": options.mode,
        "concurrency": int(level) if options.mode == "closed" else None,
        "rate": offered,
        "duration_s": round(measured_s, 3),
        "requests": requests,
        "ok": total.ok,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "errors_by_kind": dict(sorted(total.errors.items())),
        "throughput_rps": round(total.completed / measured_s, 2),
        "latency_ms": _ms(total.latency) if total.ok else None,
        "stream": _stream(total, measured_s) if stream else None,
        "generator": generator,
        "stable": options.stability.holds(
            [w.completed / options.window_s for w in windows],
            [w.latency.percentile(99) / 1000 for w in windows],
        ),
        "windows": [
            {
                "index": w.index,
                "start_s": round(w.index * options.window_s, 3),
                "requests": w.ok + w.error_count,
                "errors": w.error_count,
                "throughput_rps": round(w.completed / options.window_s, 2),
                "p50_ms": w.latency.percentile(50) / 1000 if w.ok else None,
                "p99_ms": w.latency.percentile(99) / 1000 if w.ok else None,
            }
            for w in windows
        ],
        "per_model": _per_model(total, models),
        "histogram": total.latency.to_dict(),
        "warnings": warnings,
        "aborted": aborted,
    }
    if tenants:
        step["per_tenant"] = _per_tenant(total, models, tenants)
    return step


def _per_model(total: WindowStats, models: list[str]) -> dict[str, Any]:
    """Requests, errors and mean latency per model; with ``versions`` (requests per registry
    version served, e.g. ``{"1": 120, "2": 380}``) and ``version_errors`` (how many of those
    failed) where the version served is known."""
    out: dict[str, Any] = {}
    for i, (ok, errors, sum_us) in sorted(total.per_model.items()):
        out[models[i] or "-"] = {
            "requests": ok + errors,
            "errors": errors,
            "mean_ms": round(sum_us / ok / 1000, 4) if ok else None,
        }
    for (i, version), (ok, errors) in sorted(total.per_version.items()):
        entry = out.setdefault(models[i] or "-", {"requests": 0, "errors": 0, "mean_ms": None})
        entry.setdefault("versions", {})[str(version)] = ok + errors
        entry.setdefault("version_errors", {})[str(version)] = errors
    for i in sorted({model for model, _ in total.per_load}):
        entry = out.setdefault(models[i] or "-", {"requests": 0, "errors": 0, "mean_ms": None})
        entry["load"] = load_split(total.per_load.get((i, 1)), total.per_load.get((i, 0)))
    return out


def load_split(cold: Histogram | None, warm: Histogram | None) -> dict[str, Any]:
    """Successful answers that waited for their model to be loaded (``cold``) and the others
    (``warm``): how many, their latency percentiles (None when there were none), and the hit rate
    (the warm share)."""
    cold_n = cold.count if cold is not None else 0
    warm_n = warm.count if warm is not None else 0
    return {
        "cold": {"requests": cold_n, "latency_ms": _ms(cold) if cold and cold_n else None},
        "warm": {"requests": warm_n, "latency_ms": _ms(warm) if warm and warm_n else None},
        "hit_rate": round(warm_n / (cold_n + warm_n), 6) if cold_n + warm_n else None,
    }


def _per_tenant(total: WindowStats, models: list[str], tenants: Sequence[str]) -> dict[str, Any]:
    """Requests and errors per tenant sent as, with ``versions``: requests per ``MODEL@VERSION``
    the router said served them (requests that got no answer naming a version are in neither)."""
    out: dict[str, Any] = {}
    for (tenant, model, version), (ok, errors) in sorted(total.per_tenant.items()):
        entry = out.setdefault(tenants[tenant], {"requests": 0, "errors": 0, "versions": {}})
        entry["requests"] += ok + errors
        entry["errors"] += errors
        if version >= 0:
            served = f"{models[model] or '-'}@{version}"
            entry["versions"][served] = entry["versions"].get(served, 0) + ok + errors
    return out


def _stream(total: WindowStats, measured_s: float) -> dict[str, Any]:
    return {
        "ttft_ms": _ms(total.ttft) if total.ttft and total.ttft.count else None,
        "itl_ms": _ms(total.itl) if total.itl and total.itl.count else None,
        "tokens": total.tokens,
        "tokens_per_request": round(total.tokens / total.ok, 3) if total.ok else 0.0,
        "tokens_per_s": round(total.tokens / measured_s, 2),
    }
