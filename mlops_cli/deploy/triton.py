"""Talking to one Triton server over its KServe v2 HTTP API (and gRPC for streams).

Control calls (load, unload, readiness, index, statistics) are plain JSON over HTTP with the
standard library: nothing heavy is imported to deploy. Each registered version is its own Triton
model named ``<model>-v<version>`` (see :func:`triton_name`), so two versions of a model, with
their own configs, serve side by side during a cut-over.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlops_cli.deploy.base import Chunk, InvokeRequest
from mlops_cli.errors import MlopsError, ServerError, UsageError, ValidationError
from mlops_cli.modelspec import DTYPE_NUMPY, ModelSpec, TensorSpec
from mlops_cli.render.triton import MEMORY_PARAMETER

_NAME = re.compile(r"^(?P<model>.+)-v(?P<version>[0-9]+)$")


class ServerUnreachableError(MlopsError):
    """A Triton server that does not answer."""


class TritonLoadError(ServerError):
    """Triton refused to load a model; the message is Triton's own."""


class TritonLoadHungError(TritonLoadError):
    """A load that Triton will never finish (its log said why). The server keeps the model
    LOADING and answers no unload for it: only a restart clears it."""


def one_line(message: str) -> str:
    """Triton's multi-line error (a python traceback after ``At:``) as one line."""
    head = message.split("\nAt:", 1)[0]
    return " ".join(head.split()).rstrip(" ;")


def triton_name(model: str, version: int) -> str:
    """The Triton model name of a registered version."""
    return f"{model}-v{version}"


def parse_triton_name(name: str) -> tuple[str, int] | None:
    """``m-v3`` -> ("m", 3); None for a name mlops did not give."""
    match = _NAME.fullmatch(name)
    return (match.group("model"), int(match.group("version"))) if match else None


class TritonServer:
    """One Triton server, by its HTTP base URL (``http://host:port``)."""

    def __init__(self, url: str, *, name: str = "", timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.name = name or self.url
        self.timeout = timeout

    def _call(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = {"error": raw.decode(errors="replace")}
            return exc.code, payload
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachableError(
                f"Triton server {self.name} ({self.url}) is unreachable: {reason}",
                hint="is it running? `mlops local up` starts the local one",
            ) from None

    def live(self) -> bool:
        try:
            status, _ = self._call("GET", "/v2/health/live", timeout=2.0)
        except ServerUnreachableError:
            return False
        return status == 200

    def check(self) -> None:
        """Raise ServerUnreachableError unless the server answers."""
        status, _ = self._call("GET", "/v2/health/live", timeout=5.0)
        if status != 200:
            raise ServerUnreachableError(f"Triton server {self.name} is not live (HTTP {status})")

    def index(self) -> list[dict[str, Any]]:
        """The repository index: every model the server knows, with state and reason."""
        status, payload = self._call("POST", "/v2/repository/index", {})
        if status != 200 or not isinstance(payload, list):
            raise ServerError(f"Triton server {self.name}: repository index failed ({payload})")
        return [entry for entry in payload if isinstance(entry, dict)]

    def ready_models(self) -> set[str]:
        return {e["name"] for e in self.index() if e.get("state") == "READY" and "name" in e}

    def model_ready(self, name: str) -> bool:
        status, _ = self._call("GET", f"/v2/models/{name}/ready")
        return status == 200

    def model_config(self, name: str) -> dict[str, Any]:
        status, payload = self._call("GET", f"/v2/models/{name}/config")
        return payload if status == 200 and isinstance(payload, dict) else {}

    def load(
        self, name: str, *, timeout: float, failed: Callable[[], str | None] | None = None
    ) -> None:
        """Load (or reload) ``name``; returns when READY, raises TritonLoadError with Triton's
        message otherwise. Triton runs the model's warmup samples before it reports READY.

        ``failed``, when given, is looked at while the load call is outstanding: a line it
        returns ends the wait at once with that line (a load Triton never ends, such as a python
        stub that died before its handshake, is then reported in seconds, not after
        ``timeout``). The abandoned call's connection closes at its own timeout."""
        status, payload = self._load_call(name, timeout, failed)
        if status != 200:
            message = payload.get("error") if isinstance(payload, dict) else payload
            raise TritonLoadError(
                f"Triton server {self.name} could not load {name}: {one_line(str(message))}",
                hint="the server log has the rest (`mlops local logs` for the local one)",
            )
        deadline = time.monotonic() + timeout
        while not self.model_ready(name):
            if time.monotonic() > deadline:
                raise TritonLoadError(f"{name} was not READY on {self.name} within {timeout:g} s")
            time.sleep(0.05)

    def _load_call(
        self, name: str, timeout: float, failed: Callable[[], str | None] | None
    ) -> tuple[int, Any]:
        path = f"/v2/repository/models/{name}/load"
        if failed is None:
            return self._call("POST", path, {}, timeout=timeout)
        outcome: list[tuple[int, Any] | BaseException] = []

        def call() -> None:
            try:
                outcome.append(self._call("POST", path, {}, timeout=timeout))
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
                    hint="Triton cannot finish this load and will not stop by itself: "
                    "`mlops local down` ends it, `mlops local up` starts it again",
                )

    def unload(self, name: str, *, wait: float = 30.0) -> None:
        """Unload ``name`` (Triton lets requests in flight finish first); wait until it is gone."""
        status, payload = self._call("POST", f"/v2/repository/models/{name}/unload", {})
        if status not in (200, 400):  # 400: not loaded, which is the goal anyway
            raise ServerError(f"Triton server {self.name} could not unload {name}: {payload}")
        deadline = time.monotonic() + wait
        while self.model_ready(name) and time.monotonic() < deadline:
            time.sleep(0.05)

    def statistics(self, name: str) -> dict[str, Any]:
        status, payload = self._call("GET", f"/v2/models/{name}/stats")
        if status != 200 or not isinstance(payload, dict):
            return {}
        stats = payload.get("model_stats") or [{}]
        return stats[0] if isinstance(stats[0], dict) else {}

    def memory_of(self, name: str) -> float:
        """The memory mlops recorded in a loaded model's config (0 when absent)."""
        parameters = self.model_config(name).get("parameters") or {}
        value = (parameters.get(MEMORY_PARAMETER) or {}).get("string_value", "0")
        try:
            return float(value)
        except ValueError:
            return 0.0


def warmup_requests(config: Mapping[str, Any]) -> int:
    """How many requests Triton sends a model on its own at load (its ``model_warmup`` samples,
    each ``count`` times, default once, on every instance). Its statistics count them as
    successful requests."""
    samples = sum(
        max(1, int(sample.get("count") or 0))
        for sample in config.get("model_warmup") or []
        if isinstance(sample, Mapping)
    )
    instances = sum(
        max(1, int(group.get("count") or 0))
        for group in config.get("instance_group") or []
        if isinstance(group, Mapping)
    )
    return samples * max(1, instances)


def usage(
    stats: Mapping[str, Any], *, warmup: int = 0
) -> tuple[int | None, int | None, float | None]:
    """(requests, failed requests, mean latency ms) from Triton's model statistics, less the
    ``warmup`` requests Triton made itself. Triton keeps one latency total, so the mean still
    includes the warmup's time; it is None while only warmup has been served."""
    if not stats:
        return None, None, None
    inference = stats.get("inference_stats") or {}
    success = inference.get("success") or {}
    fail = inference.get("fail") or {}
    total = int(success.get("count", 0))
    count = max(0, total - warmup)
    mean = int(success.get("ns", 0)) / total / 1e6 if count and total else None
    return count, int(fail.get("count", 0)), mean


# -- invocation ------------------------------------------------------------------------------


def encode_inputs(spec: ModelSpec, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """KServe v2 JSON inputs from ``{name: nested lists}``, checked against the spec."""
    import numpy as np

    known = {t.name: t for t in spec.inputs}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValidationError(
            f"input {unknown[0]!r} is not an input of {spec.name}",
            hint=f"inputs: {', '.join(known)}",
        )
    encoded = []
    for tensor in spec.inputs:
        if tensor.name not in values:
            raise ValidationError(
                f"input {tensor.name!r} ({tensor.dtype} {list(tensor.shape)}) is missing",
                hint="--input '{\"" + tensor.name + "\": ...}'",
            )
        array = _as_array(tensor, values[tensor.name], np, batched=spec.batching.max_batch_size > 0)
        data = array.reshape(-1).tolist()
        if tensor.dtype == "BYTES":
            data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
        encoded.append(
            {
                "name": tensor.name,
                "datatype": tensor.dtype,
                "shape": list(array.shape),
                "data": data,
            }
        )
    return encoded


def _as_array(tensor: TensorSpec, value: Any, np: Any, *, batched: bool) -> Any:
    dtype = object if tensor.dtype == "BYTES" else DTYPE_NUMPY[tensor.dtype]
    try:
        array = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"input {tensor.name!r} is not {tensor.dtype}: {exc}") from None
    want = list(tensor.shape)
    if array.ndim == len(want) and batched:
        array = array.reshape([1, *array.shape])  # one sample: add the batch dimension
    if array.ndim == 0 or (array.ndim == len(want) - 1 and not batched):
        array = array.reshape(want if -1 not in want else [1] * len(want))
    got = list(array.shape[1:] if batched else array.shape)
    if len(got) != len(want) or any(w not in (-1, g) for w, g in zip(want, got, strict=True)):
        raise ValidationError(
            f"input {tensor.name!r} has shape {list(array.shape)}; {tensor.name} takes "
            f"{'[batch, ' + ', '.join(map(str, want)) + ']' if batched else want}"
        )
    return array


def _decode_outputs(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {o["name"]: _reshape(o.get("data", []), o.get("shape", [])) for o in outputs}


def _reshape(data: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return data
    size = 1
    for dim in shape[1:]:
        size *= dim
    return [_reshape(data[i : i + size], shape[1:]) for i in range(0, len(data), size)]


def invoke_triton(
    model: str, version: int, detail: Mapping[str, Any], request: InvokeRequest
) -> Iterator[Chunk]:
    """One request to the version recorded in ``detail`` (``servers``: [{url, grpc_url}])."""
    servers = detail.get("servers") or []
    if not servers:
        raise ServerError(f"the deployment record of {model} v{version} names no server")
    server = servers[0]
    name = str(detail.get("triton_name") or triton_name(model, version))
    inputs = encode_inputs(request.spec, request.inputs)
    if request.stream:
        if not request.spec.streaming:
            raise UsageError(f"{model} does not stream", hint="drop --stream")
        if request.protocol == "grpc":
            return _stream_grpc(str(server["grpc_url"]), name, request, inputs)
        return _stream_http(str(server["url"]), name, request, inputs)
    if request.spec.streaming:
        raise UsageError(f"{model} streams its answer", hint="add --stream")
    if request.protocol == "grpc":
        return _infer_grpc(str(server["grpc_url"]), name, request, inputs)
    return _infer_http(str(server["url"]), name, request, inputs)


def _post(url: str, body: Any, timeout: float) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = json.loads(raw).get("error", raw.decode(errors="replace"))
        except ValueError:
            message = raw.decode(errors="replace")
        raise ServerError(f"Triton answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerUnreachableError(
            f"Triton at {url} is unreachable: {getattr(exc, 'reason', exc)}"
        ) from None


def _infer_http(
    url: str, name: str, request: InvokeRequest, inputs: list[dict[str, Any]]
) -> Iterator[Chunk]:
    with _post(f"{url}/v2/models/{name}/infer", {"inputs": inputs}, request.timeout) as response:
        payload = json.loads(response.read())
    yield Chunk(_decode_outputs(payload.get("outputs", [])), time.monotonic())


def _stream_http(
    url: str, name: str, request: InvokeRequest, inputs: list[dict[str, Any]]
) -> Iterator[Chunk]:
    """``generate_stream``: server-sent events, one ``data: {...}`` per response."""
    body = {i["name"]: i["data"][0] if len(i["data"]) == 1 else i["data"] for i in inputs}
    with _post(f"{url}/v2/models/{name}/generate_stream", body, request.timeout) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if "error" in event:
                raise ServerError(f"the stream failed: {event['error']}")
            outputs = {
                k: v for k, v in event.items() if k not in ("model_name", "model_version", "id")
            }
            if outputs:
                yield Chunk(outputs, time.monotonic())


def _grpc_inputs(inputs: list[dict[str, Any]]) -> list[Any]:
    import numpy as np
    import tritonclient.grpc as grpcclient

    prepared = []
    for item in inputs:
        dtype = object if item["datatype"] == "BYTES" else DTYPE_NUMPY[item["datatype"]]
        array = np.array(item["data"], dtype=dtype).reshape(item["shape"])
        tensor = grpcclient.InferInput(item["name"], list(array.shape), item["datatype"])
        tensor.set_data_from_numpy(array)
        prepared.append(tensor)
    return prepared


def _result_outputs(result: Any, spec: ModelSpec) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for tensor in spec.outputs:
        array = result.as_numpy(tensor.name)
        if array is None:
            continue
        values = array.tolist()
        outputs[tensor.name] = _strings(values)
    return outputs


def _strings(values: Any) -> Any:
    if isinstance(values, list):
        return [_strings(v) for v in values]
    return values.decode(errors="replace") if isinstance(values, bytes) else values


def _infer_grpc(
    url: str, name: str, request: InvokeRequest, inputs: list[dict[str, Any]]
) -> Iterator[Chunk]:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    try:
        result = client.infer(name, _grpc_inputs(inputs), client_timeout=request.timeout)
    except InferenceServerException as exc:
        raise ServerError(f"Triton answered: {exc.message()}") from None
    finally:
        client.close()
    yield Chunk(_result_outputs(result, request.spec), time.monotonic())


def _stream_grpc(
    url: str, name: str, request: InvokeRequest, inputs: list[dict[str, Any]]
) -> Iterator[Chunk]:
    """The gRPC bidirectional stream: each decoupled response is yielded as it arrives."""
    import queue

    import tritonclient.grpc as grpcclient

    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    try:
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        client.async_stream_infer(name, _grpc_inputs(inputs), enable_empty_final_response=True)
        deadline = time.monotonic() + request.timeout
        while True:
            try:
                result, error = responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ServerError(f"no response from {name} within {request.timeout:g} s") from None
            if error is not None:
                raise ServerError(f"the stream failed: {error.message()}")
            response = result.get_response()
            final = response.parameters.get("triton_final_response")
            outputs = _result_outputs(result, request.spec) if response.outputs else {}
            if outputs:
                yield Chunk(outputs, time.monotonic())
            if final is not None and final.bool_param:
                return
    finally:
        client.stop_stream()
        client.close()


__all__ = [
    "MEMORY_PARAMETER",
    "ServerUnreachableError",
    "TritonLoadError",
    "TritonLoadHungError",
    "TritonServer",
    "encode_inputs",
    "invoke_triton",
    "parse_triton_name",
    "triton_name",
    "usage",
    "warmup_requests",
]


def synthesize_inputs(spec: ModelSpec) -> dict[str, Any]:
    """One request's inputs from the signature alone: zeros for floats, ones for integers (a
    count such as ``max_tokens`` then asks for a little work), a short word for BYTES."""
    values: dict[str, Any] = {}
    for tensor in spec.inputs:
        shape = [1 if dim < 0 else dim for dim in tensor.shape]
        size = 1
        for dim in shape:
            size *= dim
        fill: Any = (
            "hello"
            if tensor.dtype == "BYTES"
            else 0.0
            if tensor.dtype.startswith(("FP", "BF"))
            else 1
        )
        flat = [fill] * size
        values[tensor.name] = _reshape(flat, [1, *shape])[0] if len(shape) > 1 else flat
    return values
