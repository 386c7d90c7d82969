"""Invoking a version served by a multi-model endpoint: ``invoke_endpoint`` with ``TargetModel``.

The same code reaches SageMaker and mme-local (the record's ``runtime_url``); mme-local checks no
signature, so it is called unsigned and works without AWS credentials. Bodies: a triton runtime
takes KServe v2 JSON (as SageMaker's Triton container does); any other runtime gets the inputs as
one JSON object, ``{"<input name>": value, ...}``, and answers JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from mlops_cli import aws
from mlops_cli.deploy.base import Chunk, InvokeRequest
from mlops_cli.errors import MlopsError, NotSupportedError, UsageError
from mlops_cli.triton.naming import tarball_name

STREAM_REASON = (
    "SageMaker's response streaming (InvokeEndpointWithResponseStream) takes no TargetModel, so "
    "a multi-model endpoint cannot stream a chosen version"
)


class ModelInvocationError(MlopsError):
    """The model answered an error (SageMaker ModelError): the container's message."""


def runtime_client(detail: Mapping[str, Any]) -> Any:
    """A sagemaker-runtime client for the recorded endpoint (mme-local: its URL, unsigned), in
    the recorded region."""
    url = detail.get("runtime_url")
    region = str(detail.get("region") or "us-east-1")
    if url:
        return aws.client(
            "sagemaker-runtime", use="runtime", region=region, endpoint_url=str(url), unsigned=True
        )
    return aws.client("sagemaker-runtime", use="runtime", region=region)


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


def invoke_recorded(
    model: str, version: int, detail: Mapping[str, Any], request: InvokeRequest
) -> Iterator[Chunk]:
    """One request to ``model`` v``version`` as recorded by sagemaker-mme or mme-local."""
    endpoint = str(detail.get("endpoint") or detail.get("where") or "")
    target = str(detail.get("target_model") or tarball_name(model, version))
    if not endpoint:
        raise UsageError(f"the deployment record of {model} v{version} names no endpoint")
    if request.stream:
        raise NotSupportedError(
            f"cannot stream {model} v{version}: {STREAM_REASON}",
            hint="invoke without --stream (the router streams through routing)",
        )
    body = encode_body(request)
    return _invoke(model, version, endpoint, target, detail, request, body)


def _invoke(
    model: str,
    version: int,
    endpoint: str,
    target: str,
    detail: Mapping[str, Any],
    request: InvokeRequest,
    body: bytes,
) -> Iterator[Chunk]:
    what = f"invoking {model} v{version} on endpoint {endpoint}"
    try:
        response = runtime_client(detail).invoke_endpoint(
            EndpointName=endpoint,
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


__all__ = ["STREAM_REASON", "ModelInvocationError", "invoke_recorded", "runtime_client"]
