"""A load-test target that follows registered models through their routing.

A perftest of a model *name* measures what a client of that name gets, so the version must not be
pinned when the run starts: during a redeploy the name moves to the new version and the old one is
unloaded. This target resolves each name as the router does (:func:`resolve_served`: the tenant's
route or the default alias to a version, then that version's deployment to a server and the
server's name for it) when it starts and again every ``refresh_s`` seconds (0.5 s by default, well
inside the shortest drain a deploy waits), and sends each request to the version its name means at
that moment, through one inner target (``http`` or ``grpc``) per server. ``served_version`` tells
the engine which version a request went to, so the report counts requests per served version.

Registries block, so resolution runs on a thread of its own, never on the event loop. When a
refresh fails (the registry unreachable for a moment, a server that cannot be opened) the last
routes are kept: requests keep going where they went, and fail visibly if that version is gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from mlops_cli.perf.payloads import Payload
from mlops_cli.perf.targets.base import Completion, ModelRouting, Target, TargetSpec
from mlops_cli.spec.modelspec import TensorSpec

if TYPE_CHECKING:
    from mlops_cli.registry.base import Registry


@dataclass(frozen=True)
class ServedRoute:
    """Where requests for one model name go now."""

    name: str  # the name as given: MODEL, MODEL@ALIAS or MODEL@VERSION
    model: str
    version: int
    server: str  # the server's URL, as the inner target takes it
    server_model: str  # the model's name on that server (Triton: answer-v2)


def resolve_served(
    registry: Registry, name: str, *, tenant: str | None, protocol: str
) -> ServedRoute:
    """The version ``name`` means for ``tenant`` (None: the operator's view) and where it is
    deployed on Triton (the local target or a fleet). Raises NotFoundError when the model is
    unknown (or not visible to the tenant) or the version is not deployed."""
    from mlops_cli.deploy.engine import find_deployment
    from mlops_cli.deploy.kinds import triton_detail
    from mlops_cli.registry.routing import resolve_reference

    resolution = resolve_reference(registry, name, tenant=tenant)
    registry.get_version(resolution.model, resolution.version)  # NAME@7: "version 7" is unknown
    record = find_deployment(
        registry, resolution.model, resolution.version, kinds=("local", "triton")
    )
    # the local target's detail finds the server that runs now, not the recorded port
    detail = triton_detail(record)
    server = detail.serving(resolution.model, resolution.version)
    url = f"grpc://{server.grpc_url}" if protocol == "grpc" else server.url
    return ServedRoute(name, resolution.model, resolution.version, url, detail.triton_name)


def resolve_all(registry: Registry, spec: TargetSpec, routing: ModelRouting) -> list[ServedRoute]:
    """The current route of every model of ``spec``."""
    return [
        resolve_served(registry, name, tenant=routing.tenant, protocol=spec.protocol)
        for name in spec.models
    ]


class _Request:
    """A prepared request of a followed model: which model, which of its payloads."""

    __slots__ = ("index", "model")

    def __init__(self, model: str, index: int) -> None:
        self.model = model
        self.index = index


class _Following:
    """One model's current route, the inner target serving it and its requests prepared for it."""

    __slots__ = ("requests", "route", "target")

    def __init__(self, route: ServedRoute, target: Target, requests: list[Any]) -> None:
        self.route = route
        self.target = target
        self.requests = requests


class RoutedTarget(Target):
    supports_stream: ClassVar[bool] = True  # the inner targets (http, grpc) stream
    follows_routing: ClassVar[bool] = True

    def __init__(self, spec: TargetSpec, *, open_inner: Callable[[TargetSpec], Target]) -> None:
        """``open_inner`` makes the plain target of one server (the protocol table's
        ``make_target``, passed in so that this module does not import the table that names it)."""
        super().__init__(spec)
        assert spec.routing is not None
        self.open_inner = open_inner
        self.routing = spec.routing
        self.inner_spec = replace(spec, routing=None)
        self.payloads: dict[str, list[Payload]] = {}
        self.following: dict[str, _Following] = {}
        self.servers: dict[str, Target] = {}  # started inner targets, by URL
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.registry: Registry | None = None  # opened and used on the executor's one thread
        self.refresher: asyncio.Task[None] | None = None
        self.refresh_failures = 0

    def _inner(self, url: str) -> Target:
        return self.open_inner(replace(self.inner_spec, url=url))

    def signature(self, model: str) -> list[TensorSpec] | None:
        from mlops_cli.registry import open_registry

        route = resolve_served(
            open_registry(self.routing.registry),
            model,
            tenant=self.routing.tenant,
            protocol=self.spec.protocol,
        )
        return self._inner(route.server).signature(route.server_model)

    def _resolve(self) -> list[ServedRoute]:
        if self.registry is None:
            from mlops_cli.registry import open_registry

            self.registry = open_registry(self.routing.registry)
        return resolve_all(self.registry, self.spec, self.routing)

    async def start(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(1, "perftest-routing")
        loop = asyncio.get_running_loop()
        await self._follow(await loop.run_in_executor(self.executor, self._resolve))
        self.refresher = loop.create_task(self._refresh())

    async def _follow(self, routes: list[ServedRoute]) -> None:
        for route in routes:
            current = self.following.get(route.name)
            if current is not None and current.route == route:
                continue
            target = self.servers.get(route.server)
            if target is None:
                target = self._inner(route.server)
                await target.start()
                self.servers[route.server] = target
            requests = [
                target.prepare(route.server_model, payload)
                for payload in self.payloads.get(route.name, [])
            ]
            self.following[route.name] = _Following(route, target, requests)

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.routing.refresh_s)
            try:
                await self._follow(await loop.run_in_executor(self.executor, self._resolve))
            except Exception:  # any failure (not only mlops' own): the refresher must not die
                self.refresh_failures += 1  # keep the last routes; see the module docstring

    def prepare(self, model: str, payload: Payload) -> Any:
        payloads = self.payloads.setdefault(model, [])
        payloads.append(payload)
        current = self.following.get(model)
        if current is not None:
            current.requests.append(current.target.prepare(current.route.server_model, payload))
        return _Request(model, len(payloads) - 1)

    def submit(self, prepared: Any, done: Completion) -> None:
        current = self.following[prepared.model]
        current.target.submit(current.requests[prepared.index], done)

    def submitter(self) -> Callable[[Any, Completion], None]:
        return self.submit

    def served_version(self, prepared: Any) -> int | None:
        return self.following[prepared.model].route.version

    def in_flight(self) -> int:
        return sum(target.in_flight() for target in self.servers.values())

    def waited_long(self) -> int:
        return sum(target.waited_long() for target in self.servers.values())

    async def close(self) -> None:
        if self.refresher is not None:
            self.refresher.cancel()
            await asyncio.gather(self.refresher, return_exceptions=True)
        for target in self.servers.values():
            await target.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False)
