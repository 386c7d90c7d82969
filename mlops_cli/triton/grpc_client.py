"""Triton's gRPC calls (``tritonclient.grpc``, imported on first use): model metadata, ``infer``
and the bidirectional ``ModelStreamInfer`` stream of decoupled models.

Blocking, one call at a time; :class:`TritonGrpcClient` is used as a context manager so its
channel is closed. ``tritonclient``'s ``InferenceServerException`` is translated here, once: an
unreachable server is a :class:`~mlops_cli.errors.ServerError` naming the address, a model the
server does not have ready a :class:`~mlops_cli.errors.NotFoundError`, any other refusal a
ServerError with Triton's message. perftest's asyncio gRPC path keeps its own client for speed
(``mlops_cli.perf.targets.grpc``) and builds its tensors with the same codec.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from mlops_cli.errors import NotFoundError, ServerError
from mlops_cli.spec.modelspec import TensorSpec
from mlops_cli.triton.client import ModelMetadata
from mlops_cli.triton.codec import Tensor, grpc_inputs, grpc_outputs


def grpc_address(url: str) -> str:
    """``host:port`` from ``grpc://host:port``, ``http://host:port`` or ``host:port``."""
    for prefix in ("grpc://", "http://"):
        if url.startswith(prefix):
            return url[len(prefix) :].rstrip("/")
    return url.rstrip("/")


class TritonGrpcClient:
    """One Triton server by its gRPC address (see :func:`grpc_address`)."""

    def __init__(self, url: str) -> None:
        import tritonclient.grpc as grpcclient

        self.address = grpc_address(url)
        self._client: Any = grpcclient.InferenceServerClient(self.address)

    def __enter__(self) -> TritonGrpcClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client.close()

    def model_metadata(self, name: str, *, timeout: float) -> ModelMetadata:
        """The model's signature; NotFoundError when the server has no ready model ``name``."""
        from tritonclient.utils import InferenceServerException

        try:
            meta = self._client.get_model_metadata(name, as_json=True, client_timeout=timeout)
        except InferenceServerException as exc:
            if "unavailable" in str(exc.status()).lower():
                raise ServerError(f"cannot reach Triton gRPC at {self.address}: {exc}") from exc
            raise NotFoundError(
                f"Triton at {self.address} has no ready model '{name}': {exc.message()}",
                hint="load it first (mlops deploy, or Triton's repository API)",
            ) from exc

        def tensors(key: str) -> tuple[TensorSpec, ...]:
            return tuple(
                TensorSpec(str(t["name"]), str(t["datatype"]), tuple(int(d) for d in t["shape"]))
                for t in meta.get(key, [])
            )

        return ModelMetadata(str(meta.get("name", name)), tensors("inputs"), tensors("outputs"))

    def infer(
        self, name: str, tensors: Sequence[Tensor], *, outputs: Sequence[str], timeout: float
    ) -> dict[str, Any]:
        """One ``ModelInfer``; the ``outputs`` named as ``{name: nested lists}``."""
        from tritonclient.utils import InferenceServerException

        try:
            result = self._client.infer(name, grpc_inputs(tensors), client_timeout=timeout)
        except InferenceServerException as exc:
            raise ServerError(f"Triton answered: {exc.message()}") from None
        return grpc_outputs(result, outputs)

    def stream(
        self, name: str, tensors: Sequence[Tensor], *, outputs: Sequence[str], timeout: float
    ) -> Iterator[dict[str, Any]]:
        """One request on the bidirectional stream: each decoupled response's outputs as it
        arrives, until Triton's empty final response; ServerError when none comes within
        ``timeout`` seconds of the request."""
        responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self._client.start_stream(callback=lambda result, error: responses.put((result, error)))
        try:
            self._client.async_stream_infer(
                name, grpc_inputs(tensors), enable_empty_final_response=True
            )
            deadline = time.monotonic() + timeout
            while True:
                try:
                    result, error = responses.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise ServerError(f"no response from {name} within {timeout:g} s") from None
                if error is not None:
                    raise ServerError(f"the stream failed: {error.message()}")
                response = result.get_response()
                final = response.parameters.get("triton_final_response")
                answer = grpc_outputs(result, outputs) if response.outputs else {}
                if answer:
                    yield answer
                if final is not None and final.bool_param:
                    return
        finally:
            self._client.stop_stream()


__all__ = ["TritonGrpcClient", "grpc_address"]
