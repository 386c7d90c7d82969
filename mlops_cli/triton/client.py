"""The one HTTP client of a Triton server (KServe v2 REST API and Triton's extensions).

:class:`TritonClient` speaks plain JSON over ``urllib``: deploying, observing and invoking import
nothing heavy. Every failure leaves it as one of the project's errors (``mlops_cli.errors``), once:

- a server that does not answer: :class:`ServerUnreachableError`, one line naming the URL;
- a model the server does not have ready: :class:`~mlops_cli.errors.NotFoundError`;
- a load Triton refuses: :class:`TritonLoadError` with Triton's own message (one line) in
  ``reason`` and the HTTP status in ``status``; a load Triton will never finish:
  :class:`TritonLoadHungError`;
- any other refusal: :class:`~mlops_cli.errors.ServerError` with Triton's message.

Calls block; ``load`` and ``unload`` return once the model is READY or gone. The gRPC calls live in
:mod:`mlops_cli.triton.grpc_client`; tensors are built by :mod:`mlops_cli.triton.codec`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from typing import Any
from urllib.parse import quote

from mlops_cli.errors import MlopsError, NotFoundError, ServerError
from mlops_cli.spec.modelspec import TensorSpec
from mlops_cli.triton.codec import Tensor, decode_outputs, event_outputs, generate_body, infer_body


class ServerUnreachableError(MlopsError):
    """A Triton server that does not answer."""


class TritonLoadError(ServerError):
    """Triton refused to load a model; ``reason`` is Triton's own message, ``status`` its HTTP
    status (0 when the model loaded but never became READY)."""

    def __init__(
        self, message: str, *, reason: str = "", status: int = 0, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason or message
        self.status = status


class TritonLoadHungError(TritonLoadError):
    """A load that Triton will never finish (its log said why). The server keeps the model
    LOADING and answers no unload for it: only a restart clears it."""


@dataclass(frozen=True)
class RepositoryEntry:
    """One model of the repository index."""

    name: str
    version: str = ""
    state: str = ""  # READY, UNAVAILABLE, LOADING, UNLOADING; "" for a model never loaded
    reason: str = ""


@dataclass(frozen=True)
class ModelMetadata:
    """A model's signature as the server publishes it (shapes with the batch dimension)."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class ServerMetadata:
    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class InferenceCounts:
    """A model's inference statistics: successful and failed requests, time spent on successes."""

    success: int
    success_ns: int
    failures: int


def one_line(message: str) -> str:
    """Triton's multi-line error (a python traceback after ``At:``) as one line."""
    head = message.split("\nAt:", 1)[0]
    return " ".join(head.split()).rstrip(" ;")


def _error_of(payload: Any) -> str:
    return str(payload.get("error", payload) if isinstance(payload, dict) else payload)


class TritonClient:
    """One Triton server, by its HTTP base URL (``http://host:port``); ``name`` is how messages
    call it (a fleet's server name), the URL when not given."""

    def __init__(self, url: str, *, name: str = "", timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.name = name or self.url
        self.timeout = timeout

    # -- transport ---------------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> ServerUnreachableError:
        where = (
            f"Triton at {self.url}"
            if self.name == self.url
            else f"Triton server {self.name} ({self.url})"
        )
        return ServerUnreachableError(
            f"{where} is unreachable: {getattr(exc, 'reason', exc)}",
            hint="is it running? `mlops local up` starts the local one",
        )

    @contextmanager
    def _open(self, method: str, path: str, body: Any, timeout: float | None) -> Iterator[Any]:
        """The response of one call; an HTTP error status is a response too (never raised)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            response: HTTPResponse = urllib.request.urlopen(
                request, timeout=timeout or self.timeout
            )
        except urllib.error.HTTPError as exc:
            try:
                yield exc
            finally:
                exc.close()
            return
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            raise self._unreachable(exc) from None
        with response:
            yield response

    def _call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        """(HTTP status, the JSON answer or None); a non-JSON error body as ``{"error": text}``."""
        try:
            with self._open(method, path, body, timeout) as response:
                raw = response.read()
                status = int(response.status)
        except (OSError, HTTPException) as exc:  # the connection broke while reading
            raise self._unreachable(exc) from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, {"error": raw.decode(errors="replace")}

    @staticmethod
    def _model(name: str) -> str:
        return f"/v2/models/{quote(name, safe='')}"

    # -- health and metadata -----------------------------------------------------------------

    def live(self) -> bool:
        """Whether the server answers live (False when unreachable)."""
        try:
            status, _ = self._call("GET", "/v2/health/live", timeout=min(self.timeout, 2.0))
        except ServerUnreachableError:
            return False
        return status == 200

    def ready(self) -> bool:
        """Whether the server answers ready (False when unreachable)."""
        try:
            status, _ = self._call("GET", "/v2/health/ready")
        except ServerUnreachableError:
            return False
        return status == 200

    def server_metadata(self) -> ServerMetadata:
        status, payload = self._call("GET", "/v2")
        if status != 200 or not isinstance(payload, dict):
            raise ServerError(f"Triton server {self.name}: no server metadata ({payload})")
        return ServerMetadata(
            name=str(payload.get("name", "")),
            version=str(payload.get("version", "")),
            extensions=tuple(str(e) for e in payload.get("extensions") or ()),
        )

    def model_metadata(self, name: str) -> ModelMetadata:
        """The model's signature; NotFoundError when the server has no ready model ``name``."""
        status, payload = self._call("GET", self._model(name))
        if status != 200 or not isinstance(payload, dict):
            detail = _error_of(payload)[:200]
            raise NotFoundError(
                f"Triton at {self.url} has no ready model '{name}' (HTTP {status}: {detail})",
                hint="load it first (mlops deploy, or Triton's repository API)",
            )

        def tensors(key: str) -> tuple[TensorSpec, ...]:
            return tuple(
                TensorSpec(str(t["name"]), str(t["datatype"]), tuple(int(d) for d in t["shape"]))
                for t in payload.get(key) or ()
            )

        return ModelMetadata(str(payload.get("name", name)), tensors("inputs"), tensors("outputs"))

    def model_ready(self, name: str) -> bool:
        status, _ = self._call("GET", f"{self._model(name)}/ready")
        return status == 200

    def model_config(self, name: str) -> Mapping[str, Any]:
        """The model's configuration as Triton reports it (its JSON form of ``config.pbtxt``);
        empty when the model is not loaded."""
        status, payload = self._call("GET", f"{self._model(name)}/config")
        return payload if status == 200 and isinstance(payload, dict) else {}

    def statistics(self, name: str) -> InferenceCounts | None:
        """The model's inference counts (None when the server has none for it)."""
        status, payload = self._call("GET", f"{self._model(name)}/stats")
        if status != 200 or not isinstance(payload, dict):
            return None
        stats = (payload.get("model_stats") or [{}])[0]
        inference = (stats.get("inference_stats") or {}) if isinstance(stats, dict) else {}
        success = inference.get("success") or {}
        return InferenceCounts(
            success=int(success.get("count", 0)),
            success_ns=int(success.get("ns", 0)),
            failures=int((inference.get("fail") or {}).get("count", 0)),
        )

    # -- the repository ------------------------------------------------------------------------

    def index(self) -> list[RepositoryEntry]:
        """The repository index: every model the server knows, with state and reason."""
        status, payload = self._call("POST", "/v2/repository/index", {})
        if status != 200 or not isinstance(payload, list):
            raise ServerError(f"Triton server {self.name}: repository index failed ({payload})")
        return [
            RepositoryEntry(
                name=str(entry["name"]),
                version=str(entry.get("version", "")),
                state=str(entry.get("state", "")),
                reason=str(entry.get("reason", "")),
            )
            for entry in payload
            if isinstance(entry, dict) and "name" in entry
        ]

    def ready_models(self) -> set[str]:
        return {entry.name for entry in self.index() if entry.state == "READY"}

    def load(
        self,
        name: str,
        *,
        timeout: float,
        failed: Callable[[], str | None] | None = None,
        config: str | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        """Load (or reload) ``name``; returns when READY, raises TritonLoadError with Triton's
        message otherwise. Triton runs the model's warmup samples before it reports READY.

        ``config`` (the model config as JSON) and ``files`` (path inside the model folder, such as
        ``1/model.py`` -> content) override the repository's: a model loaded with both needs no
        repository folder at all.

        ``failed``, when given, is looked at while the load call is outstanding: a line it
        returns ends the wait at once with that line (a load Triton never ends, such as a python
        stub that died before its handshake, is then reported in seconds, not after
        ``timeout``). The abandoned call's connection closes at its own timeout."""
        parameters: dict[str, str] = {}
        if config is not None:
            parameters["config"] = config
        for path, content in (files or {}).items():
            parameters[f"file:{path}"] = base64.b64encode(content).decode()
        body = {"parameters": parameters} if parameters else {}
        status, payload = self._load_call(name, body, timeout, failed)
        if status != 200:
            reason = one_line(_error_of(payload))
            raise TritonLoadError(
                f"Triton server {self.name} could not load {name}: {reason}",
                reason=reason,
                status=status,
                hint="the server log has the rest (`mlops local logs` for the local one)",
            )
        deadline = time.monotonic() + timeout
        while not self.model_ready(name):
            if time.monotonic() > deadline:
                raise TritonLoadError(f"{name} was not READY on {self.name} within {timeout:g} s")
            time.sleep(0.05)

    def _load_call(
        self,
        name: str,
        body: Mapping[str, Any],
        timeout: float,
        failed: Callable[[], str | None] | None,
    ) -> tuple[int, Any]:
        path = f"/v2/repository/models/{quote(name, safe='')}/load"
        if failed is None:
            return self._call("POST", path, body, timeout=timeout)
        outcome: list[tuple[int, Any] | BaseException] = []

        def call() -> None:
            try:
                outcome.append(self._call("POST", path, body, timeout=timeout))
            except BaseException as exc:  # handed to the waiting thread
                outcome.append(exc)

        caller = threading.Thread(target=call, name=f"load {name}", daemon=True)
        caller.start()
        while True:
            caller.join(0.2)
            if outcome:
                result = outcome[0]
                if isinstance(result, BaseException):
                    raise result
                return result
            line = failed()
            if line is not None:
                raise TritonLoadHungError(
                    f"Triton server {self.name} could not load {name}: {line}",
                    reason=line,
                    hint="Triton cannot finish this load and will not stop by itself: "
                    "`mlops local down` ends it, `mlops local up` starts it again",
                )

    def unload(self, name: str, *, wait: float = 30.0) -> None:
        """Unload ``name`` (Triton lets requests in flight finish first) and wait up to ``wait``
        seconds until it is gone. Unloading a model that is not loaded changes nothing."""
        path = f"/v2/repository/models/{quote(name, safe='')}/unload"
        status, payload = self._call("POST", path, {})
        if status not in (200, 400):  # 400: not loaded, which is the goal anyway
            raise ServerError(f"Triton server {self.name} could not unload {name}: {payload}")
        deadline = time.monotonic() + wait
        while wait > 0 and self.model_ready(name) and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- inference -------------------------------------------------------------------------------

    def infer(self, name: str, tensors: Sequence[Tensor], *, timeout: float) -> dict[str, Any]:
        """One ``infer`` call; the outputs as ``{name: nested lists}``."""
        status, payload = self._call(
            "POST", f"{self._model(name)}/infer", infer_body(tensors), timeout=timeout
        )
        if status != 200 or not isinstance(payload, dict):
            raise ServerError(f"Triton answered {status}: {_error_of(payload)}")
        return decode_outputs(payload.get("outputs") or [])

    def generate_stream(
        self, name: str, tensors: Sequence[Tensor], *, timeout: float
    ) -> Iterator[dict[str, Any]]:
        """``generate_stream`` (server-sent events): the outputs of each event as it arrives."""
        path = f"{self._model(name)}/generate_stream"
        with self._open("POST", path, generate_body(tensors), timeout) as response:
            status = int(response.status)
            if status != 200:
                raw = response.read()
                try:
                    message = _error_of(json.loads(raw))
                except ValueError:
                    message = raw.decode(errors="replace")
                raise ServerError(f"Triton answered {status}: {message}")
            for event in read_events(response):
                if "error" in event:
                    raise ServerError(f"the stream failed: {event['error']}")
                outputs = event_outputs(event)
                if outputs:
                    yield outputs


MAX_EVENT_BYTES = 64 << 20  # one server-sent event (a streamed response) at most


def read_events(response: Any) -> Iterator[dict[str, Any]]:
    """The JSON ``data:`` events of a server-sent event stream."""
    while True:
        try:
            raw_line = response.readline(MAX_EVENT_BYTES + 1)
        except OSError as exc:  # a timeout, or the server went away mid-stream
            raise ServerError(f"the stream broke off: {exc}") from None
        if not raw_line:
            return
        if len(raw_line) > MAX_EVENT_BYTES:
            raise ServerError(f"a stream event is over {MAX_EVENT_BYTES:,} bytes")
        try:
            line = raw_line.decode().strip()
            event = json.loads(line[5:]) if line.startswith("data:") else None
        except ValueError as exc:  # bad UTF-8 or JSON: the server's fault, said in one line
            raise ServerError(f"the stream sent an event that is not JSON: {exc}") from None
        if isinstance(event, dict):
            yield event


__all__ = [
    "InferenceCounts",
    "ModelMetadata",
    "RepositoryEntry",
    "ServerMetadata",
    "ServerUnreachableError",
    "TritonClient",
    "TritonLoadError",
    "TritonLoadHungError",
    "one_line",
]
