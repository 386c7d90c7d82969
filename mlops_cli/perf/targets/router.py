"""The tenant router as a load-test target (``router://HOST:PORT``; the wire contract is
:mod:`mlops_cli.perf.router_wire`).

The target sends every request as a tenant the engine draws (``submit_as``) with a fresh request
key, and reads ``X-Model-Version`` and ``X-Model-Load`` from each answer through the connection
pool's header capture, so the report counts requests per tenant and per version served, and splits
each model's latency between cold requests (they waited for an on-demand load) and warm ones. A request is prebuilt once per
(model, payload) and once per tenant (its identity header line); a send joins those bytes with the
request key, one allocation.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any, ClassVar

from mlops_cli.perf.payloads import Payload
from mlops_cli.perf.router_wire import (
    AUTH_HEADER,
    LOAD_HEADER,
    REQUEST_KEY_HEADER,
    TENANT_HEADER,
    VERSION_HEADER,
    model_path,
    parse_cold,
    parse_version,
    router_base,
)
from mlops_cli.perf.targets.base import Completion, ServedCompletion, TargetSpec, TenantTraffic
from mlops_cli.perf.targets.http import EventStream, HttpTarget


class _Prepared:
    """One (model, payload) request split around its per-send part: ``head`` ends with the
    request's last fixed header line, ``tail`` is the blank line and the body."""

    __slots__ = ("head", "tail")

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head = head
        self.tail = tail


def _identity_lines(tenants: TenantTraffic) -> list[bytes]:
    """Per tenant: its identity header line(s), then the request key header's name, as bytes."""
    keys = tenants.api_keys
    lines = []
    for index, name in enumerate(tenants.names):
        identity = (
            f"{AUTH_HEADER}: Bearer {keys[index]}"
            if keys is not None
            else f"{TENANT_HEADER}: {name}"
        )
        lines.append(f"{identity}\r\n{REQUEST_KEY_HEADER}: ".encode("latin-1"))
    return lines


class RouterTarget(HttpTarget):
    """The router over plain HTTP; see the module docstring."""

    supports_stream: ClassVar[bool] = True
    sends_as_tenants: ClassVar[bool] = True
    reports_loads: ClassVar[bool] = True

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        if spec.tenants is None:
            raise ValueError("the router target sends as tenants: spec.tenants is needed")
        self.base = router_base(spec.url)
        self.capture = ((VERSION_HEADER, parse_version), (LOAD_HEADER, parse_cold))
        self.identities = _identity_lines(spec.tenants)
        self.key_prefix = secrets.token_hex(6).encode() + b"-"  # unique per worker process
        self.sent = 0

    def prepare(self, model: str, payload: Payload) -> Any:
        if self.spec.stream:
            body = json.dumps(payload.generate_json()).encode()
            data = self._build("POST", model_path(model, "generate_stream"), body)
        else:
            data = self._build("POST", model_path(model, "infer"), payload.body())
        head, _, body_bytes = data.partition(b"\r\n\r\n")
        return _Prepared(head + b"\r\n", b"\r\n\r\n" + body_bytes)

    def submit(self, prepared: Any, done: Completion) -> None:
        """Without a tenant drawn: as the first tenant (the version served is not passed on)."""

        def unserved(kind: str | None, tokens: list[int] | None, *_: object) -> None:
            done(kind, tokens)

        self.submit_as(prepared, 0, unserved)

    def submitter(self) -> Callable[[Any, Completion], None]:
        return self.submit

    def submit_as(self, prepared: Any, tenant: int, done: ServedCompletion) -> None:
        assert self.pool is not None
        self.sent += 1
        data = b"".join(
            (
                prepared.head,
                self.identities[tenant],
                self.key_prefix,
                b"%x" % self.sent,
                prepared.tail,
            )
        )
        if self.spec.stream:
            stream = EventStream(done)
            self.pool.submit(data, stream, stream.chunk)
        else:
            self.pool.submit(data, done)
