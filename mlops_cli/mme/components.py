"""mme-local's inference-components mode: SageMaker's components, read from the control plane,
served by the agent's containers.

An invocation that names an inference component (``X-Amzn-SageMaker-Inference-Component``)
is served as SageMaker serves it: the endpoint must exist and be ``InService`` and be one for
components (its config's variant names no model); the component must exist, belong to that
endpoint and be ``InService``; its model (``DescribeModel``) says the image, the artifact and
the environment (:mod:`mlops_cli.mme.component_spec`). Each check is SageMaker's error when it
fails. An endpoint that is not registered with mme-local (``PUT /mme/endpoints``) is read from
the control plane too, so that a request without the header is refused with SageMaker's words.

What the control plane said is cached for :data:`CHECK_INTERVAL_S`: a component deleted, failed
or moved is refused from the next check on, and a component whose model changed gets a new
state (its own container name) while the old one is unloaded once its requests finish.

Each component is an :class:`~mlops_cli.mme.endpoint_state.EndpointState` of its own that the
agent loads and accounts for as it does a multi-model endpoint's TargetModel: the artifact is
fetched from the model's ``ModelDataUrl``, extracted with the strict extraction, checked as the
image checks it (Triton: :func:`~mlops_cli.mme.component_spec.triton_entry`) and loaded into the
container of its kind under a name of its own. A container that refused to start is remembered
with its reason until the component's specification changes, as SageMaker's component would
stay failed.

Thread-safe and blocking (:meth:`ComponentTable.resolve`); :meth:`ComponentTable.cached` is the
event loop's lookup, without I/O.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.mme.agent import Agent
from mlops_cli.mme.component_spec import (
    ComponentSpec,
    ContainerStartError,
    component_spec,
    not_found,
    not_in_service,
    triton_entry,
)
from mlops_cli.mme.control_plane import ControlPlane, ControlPlaneUnavailableError
from mlops_cli.mme.endpoint_state import EndpointState
from mlops_cli.mme.runtime_errors import ACCOUNT, AgentError

CHECK_INTERVAL_S = 1.0  # the control plane is asked at most this often per component/endpoint
MEMORY_BUDGET_MB = 1 << 20  # one component holds one model: it is never evicted for another
DISK_BUDGET_MB = 30 * 1024  # a SageMaker instance's default model volume
HEADER_REQUIRED = (
    "Inference Component Name header is required for endpoints to which you plan to deploy "
    "inference components. Please include Inference Component Name header or consider using "
    "SageMaker models."
)
HEADER_NOT_ALLOWED = (
    "Inference Component Name header is not allowed for endpoints to which you dont plan to "
    "deploy inference components. Please remove the Inference Component Name header and try "
    "again."
)


@dataclass
class ComponentState:
    """One component's current specification, its agent state and what the checks found."""

    spec: ComponentSpec
    ep: EndpointState
    target: str  # the artifact's file name: what the agent fetches from ep.s3_prefix
    checked_at: float
    failure: ContainerStartError | None = None


@dataclass
class _EndpointCheck:
    checked_at: float
    error: AgentError | None  # None: an endpoint for components, in service
    components: bool  # its variant names no model


@dataclass
class _Cache:
    components: dict[str, ComponentState] = field(default_factory=dict)
    endpoints: dict[str, _EndpointCheck] = field(default_factory=dict)
    config_models: dict[str, bool] = field(default_factory=dict)  # config -> names a model


def endpoint_not_found(endpoint: str) -> AgentError:
    return AgentError(
        400, "ValidationError", f"Endpoint {endpoint} of account {ACCOUNT} not found."
    )


class ComponentTable:
    """The components mme-local serves; see the module docstring."""

    def __init__(
        self,
        agent: Agent,
        control: ControlPlane,
        *,
        check_interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent, self.control = agent, control
        self.check_interval_s, self.clock = check_interval_s, clock
        self._lock = threading.Lock()  # guards _cache; never held across I/O
        self._checks: dict[str, threading.Lock] = {}  # one check at a time per name
        self._cache = _Cache()

    # -- the event loop's lookup -----------------------------------------------------------------

    def cached(self, endpoint: str, component: str) -> ComponentState | None:
        """The component when it was checked less than the interval ago and can serve; else
        None (then :meth:`resolve` in a thread). No I/O."""
        state = self._cache.components.get(component)
        if (
            state is None
            or state.failure is not None
            or state.spec.endpoint != endpoint
            or self.clock() - state.checked_at >= self.check_interval_s
        ):
            return None
        check = self._cache.endpoints.get(endpoint)
        if check is None or self.clock() - check.checked_at >= self.check_interval_s:
            return None
        return state

    # -- blocking --------------------------------------------------------------------------------

    def resolve(self, endpoint: str, component: str) -> ComponentState:
        """The component ``component`` of ``endpoint``, checked against the control plane unless
        checked less than the interval ago; AgentError with SageMaker's words otherwise."""
        self._check_endpoint(endpoint, header=True)
        with self._check_lock(f"component/{component}"):
            state = self._cache.components.get(component)
            if state is None or self.clock() - state.checked_at >= self.check_interval_s:
                state = self._check_component(endpoint, component)
        if state.spec.endpoint != endpoint:
            raise not_found(component, endpoint)
        if state.failure is not None:
            raise state.failure
        return state

    def missing_header(self, endpoint: str) -> AgentError:
        """The error for an invocation without a component header on ``endpoint``, which is not
        registered with mme-local: SageMaker's when it is an endpoint for components, else the
        endpoint is not found (mme-local serves no single-model endpoint)."""
        try:
            components = self._check_endpoint(endpoint, header=False)
        except AgentError as error:
            return error
        if not components:
            return endpoint_not_found(endpoint)
        return AgentError(400, "ValidationError", HEADER_REQUIRED)

    def mark_failed(self, state: ComponentState, error: ContainerStartError) -> None:
        """Remember that ``state``'s container refused to start, until its spec changes."""
        with self._lock:
            state.failure = error

    def describe(self) -> dict[str, Any]:
        with self._lock:
            states = sorted(self._cache.components.items())
        return {name: _describe(state) for name, state in states}

    # -- checks ----------------------------------------------------------------------------------

    def _check_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._checks.setdefault(key, threading.Lock())

    def _check_endpoint(self, endpoint: str, *, header: bool) -> bool:
        """Whether ``endpoint`` is one for components; AgentError when it is not in service,
        or (``header``) when a component was named on an endpoint that hosts a model."""
        with self._check_lock(f"endpoint/{endpoint}"):
            check = self._cache.endpoints.get(endpoint)
            if check is None or self.clock() - check.checked_at >= self.check_interval_s:
                check = self._ask_endpoint(endpoint)
                with self._lock:
                    self._cache.endpoints[endpoint] = check
        if check.error is not None:
            raise check.error
        if header and not check.components:
            raise AgentError(400, "ValidationError", HEADER_NOT_ALLOWED)
        return check.components

    def _ask_endpoint(self, endpoint: str) -> _EndpointCheck:
        now = self.clock()
        document = self._ask(self.control.endpoint, endpoint)
        # SageMaker's runtime knows only endpoints in service: any other is "not found".
        if document is None or document.get("EndpointStatus") != "InService":
            return _EndpointCheck(now, endpoint_not_found(endpoint), False)
        config = str(document.get("EndpointConfigName", ""))
        names_model = self._cache.config_models.get(config)
        if names_model is None:  # an endpoint config never changes: asked once
            described = self._ask(self.control.endpoint_config, config) or {}
            variants = described.get("ProductionVariants") or [{}]
            names_model = any(variant.get("ModelName") for variant in variants)
            with self._lock:
                self._cache.config_models[config] = names_model
        return _EndpointCheck(now, None, not names_model)

    def _check_component(self, endpoint: str, component: str) -> ComponentState:
        now = self.clock()
        document = self._ask(self.control.inference_component, component)
        previous = self._cache.components.get(component)
        if document is None:
            self._forget(component)
            raise not_found(component, endpoint)
        status = str(document.get("InferenceComponentStatus", ""))
        if status == "Updating" and previous is not None and previous.spec.endpoint == endpoint:
            with self._lock:  # SageMaker serves the running copies until an update is done
                previous.checked_at = now
            return previous
        if status not in ("InService", "Updating"):
            self._forget(component)
            raise not_in_service(component, status, document.get("FailureReason"))
        owner = str(document.get("EndpointName", ""))
        model_name = (document.get("Specification") or {}).get("ModelName")
        model = self._ask(self.control.model, model_name) if model_name else None
        if model is None and previous is not None and previous.spec.model_name == model_name:
            spec = previous.spec  # a model deleted under a running component: it keeps running
        else:
            spec = component_spec(owner, document, model)
        if previous is not None and previous.spec == spec:
            with self._lock:
                previous.checked_at = now
            return previous
        state = self._new_state(spec, now)
        with self._lock:
            self._cache.components[component] = state
        if previous is not None:
            self._retire(previous)
        return state

    def _new_state(self, spec: ComponentSpec, now: float) -> ComponentState:
        prefix, _, target = spec.model_data_url.rpartition("/")
        ep = EndpointState(
            # distinct per specification: a changed model never shares the old one's name
            f"{spec.endpoint}/{spec.name}/{spec.digest}",
            prefix + "/",
            spec.container,
            MEMORY_BUDGET_MB,
            DISK_BUDGET_MB,
        )
        if spec.container == "triton":
            ep.prepare = functools.partial(triton_entry, spec)
        return ComponentState(spec, ep, target, now)

    def _forget(self, component: str) -> None:
        with self._lock:
            state = self._cache.components.pop(component, None)
        if state is not None:
            self._retire(state)

    def _retire(self, state: ComponentState) -> None:
        """Unload ``state``'s model once its requests finish, off the caller's thread."""

        def unload() -> None:
            for target in list(state.ep.loaded):
                self.agent.unload_from(state.ep, target)

        threading.Thread(target=unload, name="mme-retire", daemon=True).start()

    def _ask(self, describe: Callable[[str], dict[str, Any] | None], name: str) -> Any:
        try:
            return describe(name)
        except ControlPlaneUnavailableError as exc:
            raise AgentError(
                500, "InternalFailure", f"mme-local could not read the control plane: {exc}"
            ) from None


def _describe(state: ComponentState) -> dict[str, Any]:
    spec, ep = state.spec, state.ep
    metrics = ep.metrics.get(state.target)
    loaded = ep.loaded.get(state.target)
    return {
        "endpoint": spec.endpoint,
        "model_name": spec.model_name,
        "image": spec.image,
        "container": spec.container,
        "inference_type": spec.inference_type,
        "model_data_url": spec.model_data_url,
        "state": "failed" if state.failure else ("loaded" if loaded else "not loaded"),
        "failure": state.failure.reason if state.failure else None,
        "container_name": loaded.container_name if loaded else None,
        "inflight": loaded.inflight if loaded else 0,
        **(metrics.to_dict() if metrics else {"invocations": 0, "errors": 0}),
    }


__all__ = [
    "CHECK_INTERVAL_S",
    "HEADER_NOT_ALLOWED",
    "HEADER_REQUIRED",
    "ComponentState",
    "ComponentTable",
    "endpoint_not_found",
]
