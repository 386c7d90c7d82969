"""Triton over gRPC (tritonclient's asyncio client): ``ModelInfer``, and for streams one
bidirectional ``ModelStreamInfer`` call per request, read until Triton's empty final response.

This is perftest's fast path; the tensors are the shared codec's (``mlops_cli.triton.codec``) and
the model's signature comes from the one blocking gRPC client (``mlops_cli.triton.grpc_client``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from mlops_cli.errors import ServerError
from mlops_cli.perf.payloads import Payload
from mlops_cli.perf.targets.base import Completion, CoroutineSlots, Target, TargetSpec
from mlops_cli.spec.modelspec import TensorSpec
from mlops_cli.triton.grpc_client import grpc_address


def _error_kind(exc: BaseException) -> str:
    """``grpc_<status code>`` from tritonclient's exception (``status()``) or grpc's (``code()``)."""
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    value = status() if callable(status) else None
    if value:
        name = getattr(value, "name", None) or str(value).replace("StatusCode.", "")
        return "grpc_" + str(name).lower()
    return "grpc_error"


class TritonGrpcTarget(Target):
    supports_stream: ClassVar[bool] = True

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.address = grpc_address(spec.url)
        self.client: Any = None
        self.slots = CoroutineSlots(spec.max_connections)

    def signature(self, model: str) -> list[TensorSpec] | None:
        from mlops_cli.triton.grpc_client import TritonGrpcClient

        with TritonGrpcClient(self.address) as client:
            return list(client.model_metadata(model, timeout=self.spec.timeout_s).inputs)

    async def start(self) -> None:
        from tritonclient.grpc.aio import InferenceServerClient
        from tritonclient.utils import InferenceServerException

        self.client = InferenceServerClient(self.address)
        try:
            await self.client.is_server_live(client_timeout=min(self.spec.timeout_s, 10.0))
        except InferenceServerException as exc:
            await self.client.close()
            raise ServerError(
                f"cannot connect to Triton gRPC at {self.address}: {exc.message()}",
                hint="check the address (host:port) and that the server is running",
            ) from exc

    def prepare(self, model: str, payload: Payload) -> Any:
        from mlops_cli.triton.codec import grpc_inputs

        return model, grpc_inputs(payload.tensors or ())

    def submit(self, prepared: Any, done: Completion) -> None:
        if self.spec.stream:
            self.slots.launch(lambda: self._stream(prepared, done))
        else:
            self.slots.launch(lambda: self._infer(prepared, done))

    async def _infer(self, prepared: Any, done: Completion) -> None:
        model, inputs = prepared
        try:
            await self.client.infer(model, inputs, client_timeout=self.spec.timeout_s)
        except asyncio.CancelledError:
            done("cancelled", None)
            raise
        except Exception as exc:  # tritonclient raises its own exception type for every failure
            done(_error_kind(exc), None)
            return
        done(None, None)

    async def _stream(self, prepared: Any, done: Completion) -> None:
        # tritonclient's aio stream_infer refuses the reserved parameter that asks Triton for an
        # empty final response, and without it a decoupled model's stream never says it ended
        # (the sync client sets it through a flag the aio client lacks). So the request is built
        # with tritonclient's own helper and sent on its stub directly.
        from tritonclient.grpc._utils import _get_inference_request

        model, inputs = prepared
        request = _get_inference_request(
            model_name=model, inputs=inputs, model_version="", request_id="", outputs=None,
            sequence_id=0, sequence_start=False, sequence_end=False, priority=0, timeout=None,
            parameters=None,
        )  # fmt: skip
        request.parameters["triton_enable_empty_final_response"].bool_param = True

        async def requests() -> Any:
            yield request

        tokens: list[int] = []
        kind: str | None = None
        call = self.client._client_stub.ModelStreamInfer(requests(), timeout=self.spec.timeout_s)
        try:
            async for response in call:
                if response.error_message:
                    kind = "stream_error"
                    break
                params = response.infer_response.parameters
                if "triton_final_response" in params and params["triton_final_response"].bool_param:
                    if response.infer_response.outputs:
                        tokens.append(time.monotonic_ns())
                    break
                tokens.append(time.monotonic_ns())
        except asyncio.CancelledError:
            call.cancel()
            done("cancelled", tokens)
            raise
        except Exception as exc:
            kind = _error_kind(exc)
        call.cancel()
        done(kind, tokens)

    def in_flight(self) -> int:
        return self.slots.running

    def waited_long(self) -> int:
        return self.slots.waited_long

    async def close(self) -> None:
        await self.slots.cancel()
        if self.client is not None:
            await self.client.close()
