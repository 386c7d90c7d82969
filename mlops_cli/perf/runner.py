"""A whole performance test: payloads checked against the model, one step per load level, each
step run in this process or split over worker processes, windows merged, the stability rule
applied, and every step summarized into the report document (see ``schemas/perftest-report``).
Through the router, each step also records the on-demand loads and evictions the router counted
while it ran (:mod:`mlops_cli.perf.router_loads`)."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mlops_cli import __version__
from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.perf.engine import StepEngine, StepPlan, StepRecord
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.payloads import Payload, check_against, synthesize, with_signature
from mlops_cli.perf.report_text import describe_errors
from mlops_cli.perf.summary import summarize_step
from mlops_cli.perf.targets import TargetSpec, make_target
from mlops_cli.perf.traffic import traffic_weights
from mlops_cli.perf.windows import WindowStats
from mlops_cli.spec.modelspec import TensorSpec

TRAFFIC_LENGTH = 4096
WindowCallback = Callable[[str, dict[str, Any]], None]


def model_weights(count: int, distribution: str) -> list[float]:
    """Traffic share of each model, in the order given: ``uniform`` or ``zipf:S`` (1/rank^S)."""
    return traffic_weights(count, distribution)


def traffic_order(count: int, distribution: str, seed: int) -> list[int]:
    """A fixed sequence of model indices drawn from the distribution, cycled during the run."""
    if count == 1:
        return [0]
    rng = random.Random(seed)
    return rng.choices(range(count), weights=model_weights(count, distribution), k=TRAFFIC_LENGTH)


def prepare_payloads(
    spec: TargetSpec,
    payloads: Sequence[Payload] | None,
    signatures: Mapping[str, Sequence[TensorSpec]] | None = None,
) -> dict[str, list[Payload]]:
    """The payloads of each model: the given ones checked against the model's signature where
    the endpoint publishes one (or ``signatures`` has it), else synthesized from it; a bodiless
    request when neither."""
    target = make_target(spec)
    by_model: dict[str, list[Payload]] = {}
    for model in spec.models or ("",):
        if signatures is not None and model in signatures:
            signature: Sequence[TensorSpec] | None = signatures[model]
        else:
            signature = target.signature(model) if model else None
        if payloads is not None:
            if signature is not None and spec.protocol in ("http", "grpc", "router"):
                fitted = [with_signature(payload, signature) for payload in payloads]
                check_against(fitted, signature, model=model)
                by_model[model] = fitted
            else:
                by_model[model] = list(payloads)
        elif signature is not None:
            by_model[model] = synthesize(signature, seed=len(by_model))
        elif spec.protocol in ("sagemaker", "sagemaker-ic"):
            raise UsageError(
                "a SageMaker endpoint publishes no signature to synthesize payloads from",
                hint="give --payload @FILE.jsonl or --template JSON",
            )
        else:
            by_model[model] = [Payload()]
    return by_model


# -- running one worker --------------------------------------------------------------------------


class _LocalControl:
    def __init__(self, controller: _Controller) -> None:
        self.controller = controller

    async def ready(self) -> int:
        return time.monotonic_ns() + 5_000_000

    def window_done(self, window: WindowStats) -> None:
        self.controller.add(window)

    def stop_after(self) -> int | None:
        return self.controller.last


class _WorkerControl:
    def __init__(self, events: Any, start: Any, last: Any) -> None:
        self.events, self.start, self.last = events, start, last

    async def ready(self) -> int:
        self.events.put(("ready", None))
        while self.start.value == 0:
            await asyncio.sleep(0.002)
        return int(self.start.value)

    def window_done(self, window: WindowStats) -> None:
        self.events.put(("window", window.to_dict()))

    def stop_after(self) -> int | None:
        value = int(self.last.value)
        return None if value < 0 else value


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(coro)
    return uvloop.run(coro)


def _engine_run(
    spec: TargetSpec,
    payloads: dict[str, list[Payload]],
    traffic: list[int],
    plan: StepPlan,
    control: Any,
) -> StepRecord:
    async def main() -> StepRecord:
        target = make_target(spec)
        models = list(payloads)
        prepared = {m: [target.prepare(m, p) for p in payloads[m]] for m in models}
        requests = []
        # Long enough for every payload of every model to be sent in turn (one model's traffic
        # is a single entry).
        length = max(len(traffic), *(len(options) for options in prepared.values()))
        for position in range(length):
            index = traffic[position % len(traffic)]
            options = prepared[models[index]]
            requests.append((index, options[position % len(options)]))
        return await StepEngine(target, requests, plan, control).run()

    return _run_loop(main())  # type: ignore[no-any-return]


def _worker_main(
    spec: TargetSpec,
    payloads: dict[str, list[Payload]],
    traffic: list[int],
    plan: StepPlan,
    events: Any,
    start: Any,
    last: Any,
) -> None:
    try:
        record = _engine_run(spec, payloads, traffic, plan, _WorkerControl(events, start, last))
    except MlopsError as exc:
        events.put(("error", exc.message))
        return
    except Exception as exc:  # reported to the parent, which raises it there
        events.put(("error", f"worker failed: {type(exc).__name__}: {exc}"))
        return
    events.put(
        (
            "done",
            {
                "windows": [w.to_dict() for w in record.windows],
                "sent": record.sent,
                "cpu_ns": record.cpu_ns,
                "measured_ns": record.measured_ns,
                "aborted": record.aborted,
                "waited_long": record.waited_long,
            },
        )
    )


# -- controlling a step ----------------------------------------------------------------------------


class _Controller:
    """Merges each window once every worker reported it; reports progress; decides stability."""

    def __init__(
        self, *, workers: int, options: LoadOptions, label: str, on_window: WindowCallback | None
    ) -> None:
        self.workers = workers
        self.options = options
        self.label = label
        self.on_window = on_window
        self.pending: dict[int, list[WindowStats]] = {}
        self.throughputs: list[float] = []
        self.p99s: list[float] = []
        self.last: int | None = None

    def add(self, window: WindowStats) -> None:
        parts = self.pending.setdefault(window.index, [])
        parts.append(window)
        if len(parts) < self.workers or self.last is not None:
            return
        merged = WindowStats(window.index)
        for part in self.pending.pop(window.index):
            merged.merge(part)
        throughput = merged.completed / self.options.window_s
        p99 = merged.latency.percentile(99) / 1000
        self.throughputs.append(throughput)
        self.p99s.append(p99)
        if self.on_window is not None:
            self.on_window(
                self.label,
                {
                    "window": window.index + 1,
                    "throughput_rps": throughput,
                    "p50_ms": merged.latency.percentile(50) / 1000 if merged.ok else None,
                    "p99_ms": p99 if merged.ok else None,
                    "errors": merged.error_count,
                },
            )
        if self.options.until_stable and self.options.stability.holds(self.throughputs, self.p99s):
            self.last = window.index


def _plans(options: LoadOptions, level: float, timeout_s: float) -> list[StepPlan]:
    workers = max(1, options.workers)
    base = StepPlan(
        mode=options.mode,
        concurrency=0,
        rate=0.0,
        arrival=options.arrival,
        warmup_s=options.warmup_s,
        window_s=options.window_s,
        max_windows=options.window_cap(),
        requests=None,
        timeout_s=timeout_s,
    )
    if options.mode == "closed":
        users = int(level)
        workers = min(workers, users)
        return [
            replace(
                base,
                concurrency=users // workers + (1 if w < users % workers else 0),
                requests=_share(options.requests, workers, w),
                seed=options.seed + w,
            )
            for w in range(workers)
        ]
    return [
        replace(
            base,
            rate=level / workers,
            requests=_share(options.requests, workers, w),
            phase_ns=int(w * 1e9 / level),
            seed=options.seed + w,
        )
        for w in range(workers)
    ]


def _share(total: int | None, workers: int, index: int) -> int | None:
    if total is None:
        return None
    return max(1, total // workers + (1 if index < total % workers else 0))


def run_step(
    spec: TargetSpec,
    payloads: dict[str, list[Payload]],
    options: LoadOptions,
    level: float,
    *,
    label: str,
    on_window: WindowCallback | None = None,
) -> tuple[list[StepRecord], _Controller]:
    """Run one load level; return each worker's record and the controller that merged them."""
    traffic = traffic_order(len(payloads), options.distribution, options.seed)
    plans = _plans(options, level, spec.timeout_s)
    controller = _Controller(workers=len(plans), options=options, label=label, on_window=on_window)
    if len(plans) == 1:
        return [
            _engine_run(spec, payloads, traffic, plans[0], _LocalControl(controller))
        ], controller
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    start = context.Value("q", 0)
    last = context.Value("q", -1)
    processes = [
        context.Process(
            target=_worker_main,
            args=(spec, payloads, traffic, plan, events, start, last),
            daemon=True,
        )
        for plan in plans
    ]
    for process in processes:
        process.start()
    records: list[StepRecord] = []
    ready = 0
    error: str | None = None
    try:
        while len(records) < len(processes) and error is None:
            try:
                kind, data = events.get(timeout=1.0)
            except queue_module.Empty:
                if not any(p.is_alive() for p in processes):
                    error = "a worker process died"
                continue
            if kind == "ready":
                ready += 1
                if ready == len(processes):
                    start.value = time.monotonic_ns() + 20_000_000
            elif kind == "window":
                controller.add(WindowStats.from_dict(data))
                if controller.last is not None:
                    last.value = controller.last
            elif kind == "error":
                error = data
            else:
                records.append(
                    StepRecord(
                        [WindowStats.from_dict(w) for w in data["windows"]],
                        data["sent"],
                        data["cpu_ns"],
                        data["measured_ns"],
                        data["aborted"],
                        data["waited_long"],
                    )
                )
    finally:
        for process in processes:
            process.join(timeout=spec.timeout_s + 5 if error is None else 1)
            if process.is_alive():
                process.terminate()
    if error is not None:
        from mlops_cli.errors import ServerError

        raise ServerError(error)
    return records, controller


def step_label(options: LoadOptions, level: float) -> str:
    if options.mode == "closed":
        return f"concurrency={int(level)}"
    return f"rate={level:g}"


def run_perftest(
    spec: TargetSpec,
    options: LoadOptions,
    *,
    payloads: Sequence[Payload] | None = None,
    signatures: Mapping[str, Sequence[TensorSpec]] | None = None,
    on_window: WindowCallback | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every step and return the report document. A target that cannot be reached, stops
    answering mid-sweep or fails every request of a step ends the run early: the steps done so
    far are kept and ``aborted`` says why (the caller turns it into an error after saving the
    report). ``signatures`` are the models' inputs where the target cannot tell them itself
    (the router's, which the caller reads as a tenant)."""
    started = datetime.now(UTC)
    by_model = prepare_payloads(spec, payloads, signatures)
    steps: list[dict[str, Any]] = []
    warnings: list[str] = []
    aborted: dict[str, Any] | None = None
    reports_loads = make_target(spec).reports_loads
    for level in options.levels:
        label = step_label(options, level)
        try:
            before = _load_counters(spec, warnings, label, on_note) if reports_loads else None
            records, controller = run_step(
                spec, by_model, options, level, label=label, on_window=on_window
            )
        except MlopsError as exc:
            aborted = {"step": label, "reason": exc.message}
            break
        model_loads = None
        if before is not None:
            after = _load_counters(spec, warnings, label, on_note)
            if after is not None:
                from mlops_cli.perf.router_loads import load_difference

                model_loads = load_difference(before, after)
        step = summarize_step(
            label=label,
            level=level,
            options=options,
            records=records,
            last_window=controller.last,
            models=list(by_model),
            stream=spec.stream,
            tenants=spec.tenants.names if spec.tenants else (),
        )
        if model_loads is not None:
            step["model_loads"] = model_loads
        steps.append(step)
        for warning in step["warnings"]:
            warnings.append(f"{label}: {warning}")
            if on_note is not None:
                on_note(f"{label}: {warning}")
        if step.get("aborted"):
            aborted = {"step": label, "reason": step["aborted"]}
            break
        if step["errors"] and not step["ok"]:  # nothing to measure at a higher load either
            aborted = {
                "step": label,
                "reason": f"every request failed ({describe_errors(step['errors_by_kind'])})",
            }
            break
    return build_document(spec, options, steps, warnings, aborted, started)


def _load_counters(
    spec: TargetSpec, warnings: list[str], label: str, on_note: Callable[[str], None] | None
) -> Any:
    """The router's load counters now; None, with a warning, when its ``/metrics`` cannot be
    read (the step runs without them)."""
    from mlops_cli.perf.router_loads import read_load_counters

    try:
        return read_load_counters(spec.url, timeout_s=spec.timeout_s)
    except MlopsError as exc:
        warning = f"{label}: no loads or evictions recorded: {exc.message}"
        warnings.append(warning)
        if on_note is not None:
            on_note(warning)
        return None


def build_document(
    spec: TargetSpec,
    options: LoadOptions,
    steps: list[dict[str, Any]],
    warnings: list[str],
    aborted: dict[str, Any] | None,
    started: datetime,
) -> dict[str, Any]:
    last = steps[-1] if steps else None
    return {
        "schema_version": 1,
        "tool": {"name": "mlops perftest", "version": __version__},
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": {
            "protocol": spec.protocol,
            "url": spec.url,
            "models": list(spec.models),
            "distribution": options.distribution,
            "stream": spec.stream,
            **({"tenants": spec.tenants.describe()} if spec.tenants else {}),
        },
        "config": {
            "mode": options.mode,
            "levels": list(options.levels),
            "arrival": options.arrival if options.mode == "open" else None,
            "duration_s": options.duration_s,
            "requests": options.requests,
            "warmup_s": options.warmup_s,
            "window_s": options.window_s,
            "max_windows": options.window_cap(),
            "until_stable": options.until_stable,
            "stability_rule": options.stability.describe(),
            "workers": options.workers,
            "timeout_s": spec.timeout_s,
        },
        # The headline figures are those of the last (heaviest) step; every step is in "steps".
        "throughput_rps": last["throughput_rps"] if last else 0.0,
        "latency_ms": dict(last["latency_ms"]) if last and last["latency_ms"] else None,
        "errors": last["errors"] if last else 0,
        "error_rate": last["error_rate"] if last else 0.0,
        "steps": steps,
        "warnings": warnings,
        "aborted": aborted,
        "error_gate": None,
        "sla": None,
        "baseline": None,
    }
