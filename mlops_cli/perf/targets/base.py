"""The contract every load-test target implements, and the description that recreates one.

A target turns payloads into prepared requests once (``prepare``) and then sends them many times
(``submit``). ``submit`` never blocks and never raises: it arranges for ``done(error_kind,
token_times)`` to be called exactly once, on the event loop thread, when the request finished
(``error_kind`` is None on success; ``token_times`` holds the ``time.monotonic_ns()`` of each
streamed token, for streaming targets). The engine measures time around ``submit``/``done``.

A target that follows registered models through their routing (``follows_routing``) sends each
request to the version the model resolves to at that moment, and says which one
(``served_version``), so that the report counts requests per served version.

A target that sends as tenants (``sends_as_tenants``: the router) is handed, per request, the
tenant the engine drew from ``spec.tenants`` (``submit_as``), and learns the version that served
it from the answer: its completion takes that version as a third argument (:data:`ServedCompletion`,
None where the answer did not say). A target that ``reports_loads`` (the router, whose dynamic
servers load models on demand) also passes, as a fourth argument, whether the answer waited for
its model to be loaded (True: a cold request; False or None: warm).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar

from mlops_cli.perf.payloads import Payload
from mlops_cli.spec.modelspec import TensorSpec

WAIT_LIMIT_NS = 10_000_000  # a request waiting longer for a free slot left late
Completion = Callable[[str | None, list[int] | None], None]
ServedCompletion = Callable[[str | None, list[int] | None, int | None, bool | None], None]
PROTOCOLS = ("http", "grpc", "sagemaker", "sagemaker-ic", "http-json", "router")


@dataclass(frozen=True)
class TargetSpec:
    """Everything needed to build a target again, in a worker process too (picklable)."""

    protocol: str
    url: str
    models: tuple[str, ...] = ()
    stream: bool = False
    timeout_s: float = 30.0
    max_connections: int = 1024
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    # Registered model names followed through their routing during the run (``models`` are then
    # those names, not the server's model names); None for a fixed endpoint.
    routing: ModelRouting | None = None
    # The tenants requests are sent as (the router target); None for every other target.
    tenants: TenantTraffic | None = None


@dataclass(frozen=True)
class ModelRouting:
    """How to resolve model names again during a run: the registry, whose view (a tenant's, or
    None for the operator's) and how often."""

    registry: str
    tenant: str | None = None
    refresh_s: float = 0.5


@dataclass(frozen=True)
class TenantTraffic:
    """Whom requests are sent as: ``names`` drawn per request by ``distribution`` (``uniform``
    or ``zipf:S`` over the order given), each as ``X-Tenant-Id: NAME`` or, with ``api_keys``
    (one per name, in the same order), as ``Authorization: Bearer KEY``."""

    names: tuple[str, ...]
    distribution: str = "uniform"
    api_keys: tuple[str, ...] | None = None

    def describe(self) -> dict[str, object]:
        """What the report says of them (never the keys)."""
        return {
            "count": len(self.names),
            "distribution": self.distribution,
            "auth": "api-key" if self.api_keys is not None else "tenant-header",
        }


class Target(ABC):
    """One kind of endpoint. Capabilities are declared, not discovered: ``supports_stream``,
    ``follows_routing``, ``sends_as_tenants``, ``reports_loads``."""

    supports_stream: ClassVar[bool] = False
    follows_routing: ClassVar[bool] = False
    sends_as_tenants: ClassVar[bool] = False
    reports_loads: ClassVar[bool] = False

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec

    def served_version(self, prepared: Any) -> int | None:
        """The registry version a send of ``prepared`` goes to now (``follows_routing`` only)."""
        return None

    def signature(self, model: str) -> list[TensorSpec] | None:
        """The model's inputs (shapes with the batch dimension, as Triton publishes them), when
        the endpoint can tell (blocking; called before the run)."""
        return None

    @abstractmethod
    async def start(self) -> None:
        """Open clients on the running loop; raise ServerError when the endpoint is unreachable."""

    @abstractmethod
    def prepare(self, model: str, payload: Payload) -> Any:
        """Encode one request once, so that sending it costs as little as possible."""

    @abstractmethod
    def submit(self, prepared: Any, done: Completion) -> None:
        """Send a prepared request; see the module docstring."""

    def submitter(self) -> Callable[[Any, Completion], None]:
        """The fastest callable doing what ``submit`` does (after ``start``)."""
        return self.submit

    def submit_as(self, prepared: Any, tenant: int, done: ServedCompletion) -> None:
        """Send a prepared request as ``spec.tenants.names[tenant]`` (``sends_as_tenants``
        only); like ``submit``, and ``done`` also gets the version that served it."""
        raise NotImplementedError(f"the {self.spec.protocol} target does not send as tenants")

    @abstractmethod
    def in_flight(self) -> int:
        """Requests sent and not yet finished."""

    def waited_long(self) -> int:
        """Requests that waited over 10 ms for a free connection or slot (the client's cap)."""
        return 0

    @abstractmethod
    async def close(self) -> None:
        """Release connections; pending requests end with the 'cancelled' kind."""


class CoroutineSlots:
    """Runs one coroutine per request with at most ``limit`` in flight (the rest wait in order);
    for targets whose clients are coroutines (gRPC) or threads (boto3)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.waiting: deque[tuple[Callable[[], Coroutine[Any, Any, None]], int]] = deque()
        self.waited_long = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def launch(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self.running >= self.limit:
            self.waiting.append((make, time.monotonic_ns()))
            return
        self.running += 1
        task = asyncio.get_running_loop().create_task(make())
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.running -= 1
        if self.waiting:
            make, queued = self.waiting.popleft()
            if time.monotonic_ns() - queued > WAIT_LIMIT_NS:
                self.waited_long += 1
            self.launch(make)

    async def cancel(self) -> None:
        self.waiting.clear()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
