"""Deployed means answering, on a multi-model endpoint: the new version's warmup sent through the
endpoint with its ``TargetModel`` before the alias moves.

A multi-model endpoint loads a model on its first invocation, so this first request is also the
load: it fetches the tarball, extracts it, hands it to the container and runs the model. The
requests are the spec's ``warmup`` samples (each ``count`` times, its ``batch_size`` on the batch
dimension, zero or random data), else one request synthesized from its signature. While SageMaker
answers ``ModelNotReadyException`` (the model is still loading) the request is sent again, up to the
endpoint file's ``warmup_timeout``; any other failure stops the deploy with the container's message
(:class:`WarmupError`), before the alias or a route moves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlops_cli import aws
from mlops_cli.deploy.base import InvokeRequest
from mlops_cli.deploy.sagemaker_runtime import (
    SageMakerDetail,
    encode_body,
    runtime_client,
    translate_runtime,
)
from mlops_cli.errors import MlopsError
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.spec.modelspec import ModelSpec, TensorSpec, Warmup

NOT_READY = "ModelNotReadyException"
MAX_WARMUP_ANSWER = 64 << 20  # bytes of a warmup's answer read at most


class WarmupError(MlopsError):
    """The new version did not answer its warmup through the endpoint; nothing was switched."""


@dataclass(frozen=True)
class WarmupResult:
    requests: int
    first_answer_s: float  # the first request: the model's load included
    seconds: float


def _zero(dtype: str) -> Any:
    if dtype == "BYTES":
        return ""
    if dtype == "BOOL":
        return False
    return 0


def _shape(tensor: TensorSpec, spec: ModelSpec, batch_size: int) -> list[int]:
    dims = [1 if dim < 0 else dim for dim in tensor.shape]
    return [batch_size, *dims] if spec.batching.max_batch_size > 0 else dims


def _nested(shape: list[int], value: Any) -> Any:
    if not shape:
        return value
    return [_nested(shape[1:], value) for _ in range(shape[0])]


def warmup_inputs(spec: ModelSpec) -> list[dict[str, Any]]:
    """The requests that warm ``spec`` up, in its own terms (input name -> nested lists)."""
    from mlops_cli.triton import codec

    samples = spec.warmup or (Warmup(name="synthesized", data="random"),)
    requests: list[dict[str, Any]] = []
    for index, sample in enumerate(samples):
        if sample.data == "random":
            signature = [
                TensorSpec(t.name, t.dtype, tuple(_shape(t, spec, sample.batch_size)))
                for t in spec.inputs
            ]
            [tensors] = codec.synthesize(signature, count=1, seed=index)
            inputs = codec.values_of(tensors)
        else:
            inputs = {
                t.name: _nested(_shape(t, spec, sample.batch_size), _zero(t.dtype))
                for t in spec.inputs
            }
        requests.extend(inputs for _ in range(max(1, sample.count)))
    return requests


def warm_up(
    *,
    spec: ModelSpec,
    model: str,
    version: int,
    detail: SageMakerDetail,
    timeout_s: float,
    reporter: Reporter = SILENT,
) -> WarmupResult:
    """Send the version's warmup through the endpoint ``detail`` names (by its TargetModel on a
    multi-model endpoint, by its InferenceComponentName on an endpoint of components);
    :class:`WarmupError` with the container's message when it does not answer."""
    if detail.inference_component:  # the body its container's mode takes (generate_stream...)
        from mlops_cli.deploy.sagemaker_stream import component_body

        encode = component_body
        address = {"InferenceComponentName": detail.inference_component}
    else:
        encode = encode_body
        address = {"TargetModel": detail.target_model, "Accept": "application/json"}
    bodies = [encode(InvokeRequest(inputs=i, spec=spec)) for i in warmup_inputs(spec)]
    client = runtime_client(region=detail.region, runtime_url=detail.runtime_url)
    what = f"{model} v{version} on endpoint {detail.endpoint}"
    named = " ".join(f"{key} {value}" for key, value in address.items() if key != "Accept")
    started = time.monotonic()
    first = 0.0
    with running(reporter, f"warming up {what} ({named})"):
        for number, body in enumerate(bodies):
            call = {"EndpointName": detail.endpoint, "Body": body, **address}
            _send(client, call, f"{what} ({named})", deadline=started + timeout_s)
            if number == 0:
                first = time.monotonic() - started
    return WarmupResult(len(bodies), first, time.monotonic() - started)


def _send(client: Any, call: dict[str, Any], what: str, *, deadline: float) -> None:
    delay = 0.2
    while True:
        try:
            response = client.invoke_endpoint(ContentType="application/json", **call)
            response["Body"].read(MAX_WARMUP_ANSWER)  # read (the answer came), bounded, dropped
            response["Body"].close()
            return
        except Exception as exc:
            if aws.error_code(exc) == NOT_READY and time.monotonic() + delay < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if not aws.is_botocore_error(exc) and not isinstance(exc, MlopsError):
                raise
            failed = translate_runtime(exc, what=f"warming up {what}")
            raise WarmupError(
                f"{failed.message}; the alias was not moved",
                hint="fix the model and register a new version; the container's log says more "
                "(mme-local: the logs under .mlops/local/mme/; SageMaker: CloudWatch Logs)",
            ) from None


def describe_warmup(spec: ModelSpec) -> str:
    """How the plan describes the warmup, for ``--dry-run``."""
    if not spec.warmup:
        return "a request synthesized from its signature"
    samples = ", ".join(f"{w.name} x{w.count}" for w in spec.warmup)
    return f"warmup {samples}"


__all__ = [
    "WarmupError",
    "WarmupResult",
    "describe_warmup",
    "warm_up",
    "warmup_inputs",
]
