"""Where a multi-model endpoint serves a version (:class:`SageMakerDetail`, the placement detail
both MME targets record) and invoking it: ``invoke_endpoint`` with ``TargetModel``.

The same code reaches SageMaker and mme-local (the record's ``runtime_url``); mme-local checks no
signature, so it is called unsigned and works without AWS credentials. Bodies: a triton runtime
takes KServe v2 JSON (as SageMaker's Triton container does); any other runtime gets the inputs as
one JSON object, ``{"<input name>": value, ...}``, and answers JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from mlops_cli import aws
from mlops_cli.deploy.base import Chunk, InvokeRequest
from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.registry.records import DeploymentRecord
from mlops_cli.triton.naming import tarball_name

STREAM_REASON = (
    "SageMaker's response streaming (InvokeEndpointWithResponseStream) takes no TargetModel, so "
    "a multi-model endpoint cannot stream a chosen version"
)


class ModelInvocationError(MlopsError):
    """The model answered an error (SageMaker ModelError): the container's message."""


@dataclass(frozen=True)
class SageMakerDetail:
    """Where a multi-model endpoint serves a version: the endpoint, the ``TargetModel`` and the
    tarball it loads, the endpoint's S3 prefix and region; sagemaker-mme adds the SageMaker
    resources it made, mme-local the loopback server's URL and backend."""

    where: str = ""
    endpoint: str = ""
    target_model: str = ""
    tarball: str = ""
    s3_prefix: str = ""
    region: str | None = None
    instance_type: str | None = None  # sagemaker-mme
    model_name: str | None = None
    endpoint_config: str | None = None
    runtime_url: str | None = None  # mme-local
    inference_component: str | None = None  # sagemaker-ic
    backend: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> SageMakerDetail:
        def text(name: str) -> str | None:
            value = record.detail.get(name)
            return str(value) if value else None

        optional = (
            "region",
            "instance_type",
            "model_name",
            "endpoint_config",
            "runtime_url",
            "inference_component",
        )
        return cls(
            where=text("where") or "",
            endpoint=text("endpoint") or text("where") or "",
            target_model=text("target_model") or "",
            tarball=text("tarball") or "",
            s3_prefix=text("s3_prefix") or "",
            backend=text("backend"),
            **{name: text(name) for name in optional},
        )


def runtime_client(
    *, region: str | None, runtime_url: str | None = None, read_timeout: float | None = None
) -> Any:
    """A sagemaker-runtime client for a recorded endpoint (mme-local: its URL, unsigned), in
    the recorded region; ``read_timeout`` bounds each read (the runtime use's when None)."""
    region = region or "us-east-1"
    if runtime_url:
        return aws.client(
            "sagemaker-runtime",
            use="runtime",
            region=region,
            endpoint_url=runtime_url,
            unsigned=True,
            read_timeout=read_timeout,
        )
    return aws.client("sagemaker-runtime", use="runtime", region=region, read_timeout=read_timeout)


def encode_body(request: InvokeRequest) -> bytes:
    if request.spec.runtime.startswith("triton"):
        from mlops_cli.triton.codec import encode_inputs, infer_body, signature_of

        signature = signature_of(request.spec)
        tensors = encode_inputs(signature, request.inputs, model=request.spec.name)
        return json.dumps(infer_body(tensors)).encode()
    known = {t.name for t in request.spec.inputs}
    unknown = sorted(set(request.inputs) - known)
    if unknown:
        raise UsageError(
            f"input {unknown[0]!r} is not an input of {request.spec.name}",
            hint=f"inputs: {', '.join(sorted(known))}",
        )
    return json.dumps(dict(request.inputs)).encode()


def decode_body(request: InvokeRequest, payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError:
        return {"body": payload.decode("utf-8", errors="replace")}
    if request.spec.runtime.startswith("triton") and isinstance(data, dict):
        from mlops_cli.triton.codec import decode_outputs

        return decode_outputs(data.get("outputs", []))
    return data if isinstance(data, dict) else {"output": data}


def invoke_endpoint(
    model: str, version: int, detail: SageMakerDetail, request: InvokeRequest
) -> Iterator[Chunk]:
    """One request to ``model`` v``version`` where ``detail`` places it (the target has checked
    the request against its capabilities: no streaming here, see :data:`STREAM_REASON`)."""
    target = detail.target_model or tarball_name(model, version)
    if not detail.endpoint:
        raise UsageError(f"the deployment record of {model} v{version} names no endpoint")
    body = encode_body(request)
    return _invoke(model, version, target, detail, request, body)


def _invoke(
    model: str,
    version: int,
    target: str,
    detail: SageMakerDetail,
    request: InvokeRequest,
    body: bytes,
) -> Iterator[Chunk]:
    what = f"invoking {model} v{version} on endpoint {detail.endpoint}"
    try:
        client = runtime_client(region=detail.region, runtime_url=detail.runtime_url)
        response = client.invoke_endpoint(
            EndpointName=detail.endpoint,
            TargetModel=target,
            Body=body,
            ContentType="application/json",
            Accept="application/json",
        )
        payload = response["Body"].read()
    except Exception as exc:
        raise translate_runtime(exc, what=what) from None
    yield Chunk(decode_body(request, payload), time.monotonic())


def translate_runtime(exc: BaseException, *, what: str) -> MlopsError:
    """botocore's runtime errors in one line: a ModelError keeps the container's first line."""
    error = getattr(exc, "response", {}).get("Error", {})
    code = str(error.get("Code", ""))
    if code == "ModelError":
        response = getattr(exc, "response", {})
        original = str(response.get("OriginalMessage") or error.get("Message") or "")
        status = response.get("OriginalStatusCode", "?")
        first = next((line for line in original.splitlines() if line.strip()), "no message")
        return ModelInvocationError(
            f"{what}: the model failed (HTTP {status}): {first.strip()[:300]}",
            hint="see the container's log (mme-local: `mlops local logs`; SageMaker: CloudWatch)",
        )
    translated = aws.translate(exc, what=what)
    first_line = translated.message.splitlines()[0] if translated.message else what
    translated.message = first_line
    translated.args = (first_line,)
    return translated


__all__ = [
    "STREAM_REASON",
    "ModelInvocationError",
    "SageMakerDetail",
    "invoke_endpoint",
    "runtime_client",
]
