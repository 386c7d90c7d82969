"""Library calls through the tenant router (``mlops router serve``): one request to a model by its
stable name, as a tenant, answered by whichever version the router picks for that tenant.

The caller is named by an API key (``Authorization: Bearer``), by a tenant (``X-Tenant-Id``, which
a router started with ``--trust-tenant-header`` believes), or both. The inputs are encoded as
``mlops invoke`` encodes them (the one KServe v2 codec), from the signature the router publishes
for that tenant's version (``GET /v2/models/{model}``); both calls carry one request key, so that
a canary split sends them to the same side. Answers are read with ``http.client``, at most
:data:`MAX_ANSWER_BYTES` (a stream: at most that much per event), within ``timeout_s`` per read.

A refusal is the router's own one-line reason as one error, by status: 404 (no such model, or not
visible to this tenant) :class:`~mlops_cli.errors.NotFoundError`, 401/403
:class:`RouterAuthError`, 400/413/422 :class:`~mlops_cli.errors.UsageError`, anything else (502,
504: the model's server failed) :class:`~mlops_cli.errors.ServerError`. The wire contract itself
(header names, paths) is :mod:`mlops_cli.perf.router_wire`, shared with the load target.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlops_cli.api.serving import Answer, AnswerChunk
from mlops_cli.errors import MlopsError, NotFoundError, ServerError, UsageError
from mlops_cli.perf.router_wire import (
    REQUEST_KEY_HEADER,
    SOURCE_HEADER,
    VERSION_HEADER,
    check_caller,
    check_router_url,
    identity_headers,
    model_path,
    parse_version,
)
from mlops_cli.spec.modelspec import TensorSpec

MAX_ANSWER_BYTES = 64 << 20
MAX_REASON_CHARS = 300


class RouterAuthError(MlopsError):
    """The router did not accept the caller: no key, an unknown key, or an untrusted tenant."""

    default_hint = (
        "give the tenant's API key (--api-key or MLOPS_API_KEY), or --tenant when the router "
        "trusts the tenant header"
    )


@dataclass(frozen=True)
class RouterCaller:
    """Where the router is (``http(s)://HOST:PORT`` or ``router://HOST:PORT``) and who calls it."""

    url: str
    api_key: str | None = None
    tenant: str | None = None
    request_key: str | None = None
    timeout_s: float = 60.0

    def headers(self) -> dict[str, str]:
        headers = identity_headers(tenant=self.tenant, api_key=self.api_key)
        if self.request_key is not None:
            headers[REQUEST_KEY_HEADER] = self.request_key
        return headers


def invoke_via_router(
    *,
    router: str,
    model: str,
    inputs: Mapping[str, Any],
    api_key: str | None = None,
    tenant: str | None = None,
    request_key: str | None = None,
    stream: bool = False,
    timeout_s: float = 60.0,
    on_chunk: Callable[[AnswerChunk], None] | None = None,
) -> Answer:
    """Send one request for ``model`` (a stable name: the router picks the version) through the
    router at ``router``, as ``api_key``'s tenant or ``tenant``; ``on_chunk`` sees each streamed
    response as it arrives. The answer names the version that served it and why (route, alias or
    canary), as the router said; its tenant is ``tenant`` ("" when the API key alone named it)."""
    from mlops_cli.triton.codec import encode_inputs

    if "@" in model:
        raise UsageError(
            f"the router picks the version: give {model.partition('@')[0]!r}, not {model!r}",
            hint="pin a version with a route (mlops route set TENANT MODEL VERSION), "
            "or invoke without the router",
        )
    check_router_url(router)
    check_caller(tenant=tenant, api_key=api_key, request_key=request_key)
    caller = RouterCaller(
        router, api_key, tenant, request_key or secrets.token_hex(8), timeout_s=timeout_s
    )
    tensors = encode_inputs(model_signature(caller, model), inputs, model=model)
    started = time.monotonic()
    if stream:
        chunks, served_by = _stream(caller, model, tensors, started, on_chunk)
    else:
        chunks, served_by = _infer(caller, model, tensors, started)
    version = parse_version(served_by[0])
    if version is None:
        raise ServerError(
            f"the router at {router} did not say which version answered ({VERSION_HEADER})",
            hint="is that URL an `mlops router serve`?",
        )
    return Answer(
        model=model,
        version=version,
        tenant=tenant or "",
        source=served_by[1] or "",
        target=f"router:{router}",
        total_ms=round((time.monotonic() - started) * 1000, 3),
        stream=stream,
        chunks=tuple(chunks),
    )


def model_signature(caller: RouterCaller, model: str) -> tuple[TensorSpec, ...]:
    """The inputs of the version the router serves ``model`` to this caller (shapes with the
    batch dimension, as Triton publishes them)."""
    with _exchange(caller, "GET", model_path(model), None) as response:
        document = _json(caller, response)
    try:
        return tuple(
            TensorSpec(str(t["name"]), str(t["datatype"]), tuple(int(d) for d in t["shape"]))
            for t in document.get("inputs") or ()
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ServerError(
            f"the router at {caller.url} sent metadata of {model} that is not KServe v2"
        ) from None


def _infer(
    caller: RouterCaller, model: str, tensors: Any, started: float
) -> tuple[list[AnswerChunk], ServedBy]:
    from mlops_cli.triton.codec import decode_outputs, infer_body

    with _exchange(caller, "POST", model_path(model, "infer"), infer_body(tensors)) as response:
        document = _json(caller, response)
        received = round((time.monotonic() - started) * 1000, 3)
        served_by = _served_by(response)
    outputs = document.get("outputs")
    if not isinstance(outputs, list):
        raise ServerError(f"the router at {caller.url} answered without outputs")
    return [AnswerChunk(decode_outputs(outputs), received)], served_by


def _stream(
    caller: RouterCaller,
    model: str,
    tensors: Any,
    started: float,
    on_chunk: Callable[[AnswerChunk], None] | None,
) -> tuple[list[AnswerChunk], ServedBy]:
    from mlops_cli.triton.client import read_events
    from mlops_cli.triton.codec import event_outputs, generate_body

    path = model_path(model, "generate_stream")
    chunks = []
    with _exchange(caller, "POST", path, generate_body(tensors)) as response:
        served_by = _served_by(response)
        for event in read_events(response):
            if "error" in event:
                raise ServerError(f"the stream failed: {_one_line(str(event['error']))}")
            outputs = event_outputs(event)
            if outputs:
                chunk = AnswerChunk(outputs, round((time.monotonic() - started) * 1000, 3))
                chunks.append(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
    return chunks, served_by


ServedBy = tuple[str | None, str | None]  # the answer's version and source headers


def _served_by(response: http.client.HTTPResponse) -> ServedBy:
    return response.getheader(VERSION_HEADER), response.getheader(SOURCE_HEADER)


@contextmanager
def _exchange(
    caller: RouterCaller, method: str, path: str, body: Any
) -> Iterator[http.client.HTTPResponse]:
    """The response to one request, once its status is 2xx; a refusal raised as its error."""
    scheme, host, port = check_router_url(caller.url)
    kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = kind(host, port, timeout=caller.timeout_s)
    headers = {"Accept": "application/json", **caller.headers()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
        except TimeoutError:
            raise ServerError(
                f"the router at {caller.url} did not answer within {caller.timeout_s:g} s",
                hint="raise --timeout, or check the router and the model's server",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise ServerError(
                f"the router at {caller.url} is unreachable: {why}",
                hint="is `mlops router serve` running at that address?",
            ) from None
        if not 200 <= response.status < 300:
            raise _refusal(caller, response)
        yield response
    finally:
        connection.close()


def _read(caller: RouterCaller, response: http.client.HTTPResponse) -> bytes:
    try:
        data = response.read(MAX_ANSWER_BYTES + 1)
    except TimeoutError:
        raise ServerError(
            f"the router at {caller.url} stopped answering for {caller.timeout_s:g} s"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise ServerError(f"the router's answer broke off: {exc}") from None
    if len(data) > MAX_ANSWER_BYTES:
        raise ServerError(f"the router's answer is over {MAX_ANSWER_BYTES >> 20} MiB")
    return data


def _json(caller: RouterCaller, response: http.client.HTTPResponse) -> dict[str, Any]:
    try:
        document = json.loads(_read(caller, response))
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ServerError(f"the router at {caller.url} answered with something that is not JSON")
    return document


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON_CHARS else line[:MAX_REASON_CHARS] + "..."


def _refusal(caller: RouterCaller, response: http.client.HTTPResponse) -> MlopsError:
    """The router's refusal as the project's error: its one-line reason, by status."""
    status = response.status
    try:
        raw = _read(caller, response)
        document = json.loads(raw)
        reason = str(document["error"]) if isinstance(document, dict) else raw.decode()
    except (MlopsError, ValueError, KeyError):
        reason = response.reason or "no reason given"
    served = parse_version(response.getheader(VERSION_HEADER))
    where = f"router {caller.url}, HTTP {status}" + (f", version {served}" if served else "")
    message = f"{_one_line(reason)} ({where})"
    if status == 404:
        return NotFoundError(message)
    if status in (401, 403):
        return RouterAuthError(message)
    if status in (400, 413, 422):
        hint = (
            "send a smaller input" if status == 413 else "check --input against the model's inputs"
        )
        return UsageError(message, hint=hint)
    return ServerError(
        message, hint="the router could not get an answer from the model's server: mlops status"
    )
