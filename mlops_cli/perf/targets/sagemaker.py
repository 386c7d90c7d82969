"""SageMaker runtime: ``invoke_endpoint(EndpointName, TargetModel, Body)`` through boto3 (SigV4,
the standard credential chain, ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` honoured), so the same target
measures a real endpoint and a loopback stand-in such as mme-local. boto3 blocks, so calls run on
a thread pool sized to the in-flight cap; the engine still measures from its own clock."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, ClassVar

from mlops_cli.errors import ServerError
from mlops_cli.perf.payloads import Payload
from mlops_cli.perf.targets.base import Completion, CoroutineSlots, Target, TargetSpec

MAX_THREADS = 256


def endpoint_name(url: str) -> str:
    """``sagemaker://NAME`` or a bare endpoint name."""
    return url.removeprefix("sagemaker://").strip("/")


class SageMakerTarget(Target):
    supports_stream: ClassVar[bool] = False

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.endpoint = endpoint_name(spec.url)
        threads = max(1, min(spec.max_connections, MAX_THREADS))
        self.slots = CoroutineSlots(threads)
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, "perftest-sagemaker")
        self.client: Any = None

    async def start(self) -> None:
        from mlops_cli import aws
        from mlops_cli.errors import MlopsError

        try:
            # The "measure" use: no retries (a retry would hide a failure), the run's timeout.
            self.client = aws.client(
                "sagemaker-runtime",
                use="measure",
                max_pool=self.slots.limit,
                read_timeout=self.spec.timeout_s,
            )
        except MlopsError as exc:  # no region, bad profile, missing credentials, ...
            raise ServerError(
                exc.message,
                hint=exc.hint or "check the AWS configuration (AWS_REGION, the profile)",
            ) from None

    def prepare(self, model: str, payload: Payload) -> Any:
        args: dict[str, Any] = {
            "EndpointName": self.endpoint,
            "Body": payload.body(),
            "ContentType": "application/json",
        }
        if model:
            args["TargetModel"] = model
        return args

    def submit(self, prepared: Any, done: Completion) -> None:
        self.slots.launch(lambda: self._invoke(prepared, done))

    async def _invoke(self, prepared: Any, done: Completion) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self._call, prepared)
        except asyncio.CancelledError:
            done("cancelled", None)
            raise
        except Exception as exc:
            done(_error_kind(exc), None)
            return
        done(None, None)

    def _call(self, args: dict[str, Any]) -> None:
        response = self.client.invoke_endpoint(**args)
        response["Body"].read()

    def in_flight(self) -> int:
        return self.slots.running

    def waited_long(self) -> int:
        return self.slots.waited_long

    async def close(self) -> None:
        await self.slots.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _error_kind(exc: Exception) -> str:
    from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

    if isinstance(exc, ClientError):
        return "sagemaker_" + str(exc.response.get("Error", {}).get("Code", "error"))
    if isinstance(exc, ReadTimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connect"
    return "sagemaker_error"
