"""Library call for load tests: ``perftest``, and what a target word means.

A target is a URL (its scheme picks the protocol), a registered model name (followed through its
routing to wherever it is deployed while the test runs, as a tenant sees it or as the operator
does), or a model name on the running local Triton. A ``router://HOST:PORT`` target is the tenant
router: requests go as tenants drawn per request (``reach.tenants``), and payloads are fitted to
(or synthesized from) the signature the router publishes to the first tenant. The run's report
document is the perf engine's own (:mod:`mlops_cli.perf.runner`); the gates (failed requests, an
SLA, a baseline) are applied to it here and turned into the result's outcome: exit 1 when the run
aborted, 3 when a gate is not met. The report is returned either way, so that it can be printed
in full.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.api.outcome import OK, Outcome
from mlops_cli.errors import GateFailedError, MlopsError, NotFoundError, ServerError, UsageError
from mlops_cli.perf.options import TargetOptions as TargetOptions  # re-exported as api's

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.perf.load_options import LoadOptions
    from mlops_cli.perf.sla import Sla
    from mlops_cli.perf.targets import ModelRouting, TargetSpec

_DEFAULT_REACH = TargetOptions()  # the target word alone: its scheme picks the protocol

WindowCallback = Callable[[str, dict[str, Any]], None]  # (step label, window numbers)


@dataclass(frozen=True)
class PerftestResult:
    """The report document (steps, latency, errors, SLA verdict), the report files written, and
    the outcome of the gates."""

    document: dict[str, Any]
    written: dict[str, str]  # report format -> path
    outcome: Outcome

    def to_dict(self) -> dict[str, Any]:
        return self.document


def perftest(
    *,
    target: str,
    settings: Settings,
    load: LoadOptions,
    reach: TargetOptions = _DEFAULT_REACH,
    sla: Sla | None = None,
    max_error_rate: float = 0.0,
    report_dir: Path | None = None,
    baseline: Path | None = None,
    payload_file: Path | None = None,
    template: str | None = None,
    on_window: WindowCallback | None = None,
    on_note: Callable[[str], None] | None = None,
) -> PerftestResult:
    """Load ``target`` step by step as ``load`` says and report latency percentiles, throughput
    and errors. Any failed request fails the run unless ``max_error_rate`` (a fraction) allows
    it; ``sla`` and ``baseline`` are gates too. Everything that can be refused is refused before
    any load is sent."""
    from mlops_cli.perf import payloads
    from mlops_cli.perf import report as reports
    from mlops_cli.perf.runner import model_weights, run_perftest, step_label
    from mlops_cli.perf.targets import make_target

    spec = resolve_target(target, reach=reach, settings=settings)
    model_weights(max(1, len(spec.models)), load.distribution)  # a bad distribution fails here
    make_target(spec)  # an unsupported protocol or capability fails before any load
    previous = reports.load_baseline(baseline) if baseline else None
    if previous is not None:
        labels = [step_label(load, level) for level in load.levels]
        reports.check_baseline_steps(previous, labels, source=str(baseline))
    bodies = None
    if payload_file is not None:
        bodies = payloads.read_jsonl(payload_file)
    elif template is not None:
        bodies = payloads.from_template(template)
    signatures = _router_signatures(spec) if spec.protocol == "router" else None
    document = run_perftest(
        spec,
        load,
        payloads=bodies,
        signatures=signatures,
        on_window=on_window,
        on_note=on_note,
    )
    error = _aborted(document, report_dir, stream=spec.stream)
    gates = _gates(document, spec, sla, max_error_rate, previous, baseline)
    written = reports.write_reports(document, report_dir) if report_dir else {}
    if error is None and gates is not None:
        error = gates
    return PerftestResult(document, written, Outcome.failed(error) if error else OK)


def _aborted(
    document: dict[str, Any], report_dir: Path | None, *, stream: bool
) -> MlopsError | None:
    """A run that ended early (unreachable target, every request of a step failed): exit 1."""
    from mlops_cli.perf.report import errors_hint

    if not document.get("aborted"):
        return None
    kept = (
        f"partial results in {report_dir / 'report.json'}"
        if report_dir
        else "use --report DIR to keep partial results"
    )
    step_name = document["aborted"]["step"]
    aborted_step = next((s for s in document["steps"] if s["label"] == step_name), None)
    why = errors_hint(aborted_step["errors_by_kind"], stream=stream) if aborted_step else None
    return ServerError(
        f"load test aborted at {step_name}: {document['aborted']['reason']}",
        hint=f"{why}; {kept}" if why else kept,
    )


def _gates(
    document: dict[str, Any],
    spec: TargetSpec,
    sla: Sla | None,
    max_error_rate: float,
    previous: dict[str, Any] | None,
    baseline: Path | None,
) -> GateFailedError | None:
    """Apply the error gate, the SLA and the baseline to ``document`` (each records its verdict
    in it); the error naming every gate not met, or None."""
    from mlops_cli.perf import report as reports
    from mlops_cli.perf import report_text

    failures: list[str] = []
    hint: str | None = None
    if not reports.apply_error_gate(document, max_error_rate):
        gate = document["error_gate"]["failures"]
        failures.append(
            "failed requests ("
            + "; ".join(
                f"{f['step']}: {f['errors']} of {f['requests']}, "
                f"{report_text.describe_errors(f['errors_by_kind'])}"
                for f in gate
            )
            + f") above --max-error-rate {max_error_rate * 100:.10g}%"
        )
        kinds: dict[str, int] = {}
        for failure in gate:
            for kind, count in failure["errors_by_kind"].items():
                kinds[kind] = kinds.get(kind, 0) + count
        hint = reports.errors_hint(kinds, stream=spec.stream) or (
            "allow some with --max-error-rate, e.g. --max-error-rate 1%"
        )
    if sla is not None:
        reports.apply_sla(document, sla)
        if not document["sla"]["passed"]:
            named = sorted(
                {
                    f"{f['term']} (at {f['step']}: {report_text.measured_text(f['actual'])})"
                    for f in document["sla"]["failures"]
                }
            )
            failures.append("SLA not met: " + "; ".join(named or ["no step completed"]))
    if previous is not None and baseline is not None:
        regressions = reports.compare_baseline(document, previous, source=str(baseline))
        if regressions:
            failures.append(
                f"{len(regressions)} regression(s) against {baseline}: "
                + "; ".join(f"{r['step']} {r['metric']} {r['change']:+.1%}" for r in regressions)
            )
    return GateFailedError("; ".join(failures), hint=hint) if failures else None


def resolve_target(target: str, *, reach: TargetOptions, settings: Settings) -> TargetSpec:
    """The target's description. A URL picks its protocol from the scheme (``grpc://``,
    ``sagemaker://``, ``router://``; ``http(s)://`` is Triton with models, plain HTTP JSON
    without); tenants (``reach.tenants``) are for the router alone, which needs them. A bare
    name is a registered model, followed through its routing during the run (as
    ``reach.tenant`` sees it, or the operator's view), else a model on the running local
    Triton."""
    from mlops_cli.perf.targets import PROTOCOLS, TargetSpec

    protocol, models = reach.protocol, reach.models
    if protocol is not None and protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol '{protocol}'", hint=f"valid: {', '.join(PROTOCOLS)}")
    url = target
    scheme = target.split("://", 1)[0] if "://" in target else None
    routing: ModelRouting | None = None
    if reach.tenant is not None and scheme is not None:
        raise UsageError(
            "--tenant applies to registered model names, not to a URL",
            hint="give the model's registered name as TARGET, or drop --tenant",
        )
    if scheme is None:
        models = models or (target,)
        protocol = protocol or "http"
        if protocol not in ("http", "grpc"):
            raise UsageError(
                f"a model name is served by Triton over http or grpc, not {protocol}",
                hint="give the endpoint's URL for other protocols",
            )
        routing = _registered(settings, models, reach.tenant)
        if routing is not None:
            url = _first_server(models, routing, protocol)
        else:
            url = _local_triton_url(settings, protocol)
    elif scheme in ("grpc", "sagemaker", "router"):
        protocol = protocol or scheme
    elif scheme in ("http", "https"):
        protocol = protocol or ("http" if models else "http-json")
    else:
        raise UsageError(
            f"cannot tell what {target!r} is",
            hint="give a registered model name, a model on the local Triton, or a URL: "
            "http(s)://, grpc://, sagemaker://ENDPOINT",
        )
    if protocol in ("http", "grpc") and not models:
        raise UsageError(f"the {protocol} (Triton) protocol needs a model", hint="add --model NAME")
    if protocol == "router":
        from mlops_cli.perf.router_wire import check_router_url

        check_router_url(url)
        if not models:
            raise UsageError("the router target needs a model", hint="add --model NAME")
        if reach.tenants is None:
            raise UsageError(
                "the router target sends every request as a tenant: none was given",
                hint="add --tenants t1,t2 (or @FILE), or --api-keys @FILE",
            )
    elif reach.tenants is not None:
        raise UsageError(
            f"--tenants, --tenant-distribution and --api-keys apply to router:// targets, "
            f"not to {protocol}",
            hint="give the router's URL (router://HOST:PORT) as TARGET",
        )
    return TargetSpec(
        protocol=protocol,
        url=url,
        models=models,
        stream=reach.stream,
        timeout_s=reach.timeout_s,
        max_connections=reach.max_connections,
        method=reach.method.upper(),
        headers=reach.headers,
        routing=routing,
        tenants=reach.tenants,
    )


def _router_signatures(spec: TargetSpec) -> dict[str, Any]:
    """Each model's inputs as the router publishes them to the first tenant (blocking)."""
    from mlops_cli.api.router_client import RouterCaller, model_signature

    assert spec.tenants is not None
    keys = spec.tenants.api_keys
    caller = RouterCaller(
        spec.url,
        api_key=keys[0] if keys is not None else None,
        tenant=None if keys is not None else spec.tenants.names[0],
        timeout_s=spec.timeout_s,
    )
    return {model: model_signature(caller, model) for model in spec.models}


def _registered(
    settings: Settings, names: tuple[str, ...], tenant: str | None
) -> ModelRouting | None:
    """How to follow ``names`` when they are all registered models; None when none is, so that
    plain Triton model names keep working. Only "no such model" falls back: a registry that
    cannot be reached or read is an error that names the registry."""
    from mlops_cli.perf.targets import ModelRouting
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.routing import parse_model_ref

    registry = open_registry(settings.registry)
    known = []
    for name in names:
        try:
            registry.get_model(parse_model_ref(name)[0])
        except NotFoundError:
            continue
        known.append(name)
    if not known:
        if tenant is not None:
            raise UsageError(
                "--tenant applies to registered models; "
                f"{', '.join(names)} is not registered in {settings.registry}",
                hint="mlops models list",
            )
        return None
    if len(known) != len(names):
        missing = ", ".join(n for n in names if n not in known)
        raise UsageError(
            f"{missing} is not a registered model, unlike {', '.join(known)}",
            hint="test registered models (followed through their routing) or Triton model "
            "names on one server (give its URL and --model), not both at once",
        )
    return ModelRouting(registry=settings.registry, tenant=tenant)


def _first_server(names: tuple[str, ...], routing: ModelRouting, protocol: str) -> str:
    """The server the first name resolves to now (the report's URL); every name must resolve
    and be deployed, or the run is refused before any load."""
    from mlops_cli.perf.targets.routed import resolve_served
    from mlops_cli.registry import open_registry

    registry = open_registry(routing.registry)
    routes = [
        resolve_served(registry, name, tenant=routing.tenant, protocol=protocol) for name in names
    ]
    return routes[0].server


def _local_triton_url(settings: Settings, protocol: str) -> str:
    from mlops_cli.local import LocalTriton
    from mlops_cli.workspace import Workspace

    state = LocalTriton(Workspace(settings.workspace), settings.local).read_state()
    if state is None:
        raise NotFoundError(
            "no local Triton is running to take the model name",
            hint="start it with 'mlops local up', or give the endpoint's URL",
        )
    if protocol == "grpc":
        return f"grpc://127.0.0.1:{state.grpc_port}"
    return state.http_url
