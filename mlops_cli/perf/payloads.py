"""Request payloads: synthesized from a model's signature, read from a JSONL file, or expanded from a
JSON template; and checked against the signature before any load is sent.

A :class:`Payload` holds either named tensors (KServe v2 inputs, which every Triton protocol can
encode) or a raw JSON document (sent as is to plain HTTP JSON and SageMaker endpoints). Tensors,
signatures, synthesis and the checks are the shared KServe v2 codec's (``mlops_cli.triton.codec``);
this module adds where payloads come from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.errors import ValidationError
from mlops_cli.spec.modelspec import TensorSpec
from mlops_cli.triton import codec
from mlops_cli.triton.codec import Tensor


@dataclass(frozen=True)
class Payload:
    """One request body: named tensors, or a raw JSON document."""

    tensors: tuple[Tensor, ...] | None = None
    raw: Any = None

    def v2_json(self) -> dict[str, Any]:
        """The KServe v2 ``infer`` request body."""
        if self.tensors is None:
            return self.raw  # type: ignore[no-any-return]
        return codec.infer_body(self.tensors)

    def generate_json(self) -> dict[str, Any]:
        """The body of Triton's ``generate``/``generate_stream`` extension: one value per input."""
        if self.tensors is None:
            return self.raw  # type: ignore[no-any-return]
        return codec.generate_body(self.tensors)

    def body(self) -> bytes:
        return json.dumps(self.v2_json() if self.tensors is not None else self.raw).encode()


def synthesize(signature: Sequence[TensorSpec], *, count: int = 16, seed: int = 0) -> list[Payload]:
    """``count`` distinct payloads matching ``signature`` (see :func:`codec.synthesize`)."""
    return [Payload(tensors=t) for t in codec.synthesize(signature, count=count, seed=seed)]


def _parse_document(doc: Any, where: str) -> Payload:
    """A JSON document as a payload: KServe v2 ``{"inputs": [...]}`` becomes tensors."""
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
        tensors = []
        for position, item in enumerate(doc["inputs"]):
            if not isinstance(item, dict) or not {"name", "datatype", "shape", "data"} <= set(item):
                raise ValidationError(
                    "each input needs name, datatype, shape and data",
                    source=where,
                    key_path=f"inputs[{position}]",
                )
            flat = tuple(codec.flatten(item["data"]))
            tensors.append(
                Tensor(str(item["name"]), str(item["datatype"]), tuple(item["shape"]), flat)
            )
        return Payload(tensors=tuple(tensors))
    return Payload(raw=doc)


def read_jsonl(path: Path) -> list[Payload]:
    """One payload per non-empty line of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(
            f"cannot read the payload file: {exc.strerror}", source=str(path)
        ) from exc
    payloads = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not JSON: {exc.msg}", source=f"{path}:{number}") from exc
        payloads.append(_parse_document(doc, f"{path}:{number}"))
    if not payloads:
        raise ValidationError("the payload file holds no JSON line", source=str(path))
    return payloads


def from_template(template: str, *, count: int = 16) -> list[Payload]:
    """Expand a JSON template ``count`` times; ``{{i}}`` becomes 0, 1, ... in each copy."""
    payloads = []
    for index in range(count):
        text = template.replace("{{i}}", str(index))
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"the template is not JSON: {exc.msg}", source="--template"
            ) from exc
        payloads.append(_parse_document(doc, "--template"))
        if "{{i}}" not in template:
            break
    return payloads


def with_signature(payload: Payload, signature: Sequence[TensorSpec]) -> Payload:
    """A raw ``{"input": value, ...}`` document (the form ``mlops invoke --input`` takes) as named
    tensors with the signature's datatypes; a value without the batch dimension gets one.
    Anything else is returned as it is (and checked as it is)."""
    by_name = {spec.name: spec for spec in signature}
    raw = payload.raw
    if payload.tensors is not None or not isinstance(raw, dict) or set(raw) != set(by_name):
        return payload
    tensors = (
        codec.encode_value(by_name[name], value, source="payload") for name, value in raw.items()
    )
    return Payload(tensors=tuple(tensors))


def check_against(
    payloads: Sequence[Payload], signature: Sequence[TensorSpec], *, model: str
) -> None:
    """Raise :class:`ValidationError` when a payload does not fit the model's inputs: an unknown or
    missing input, another datatype, a shape that the signature does not allow, or a data length
    that does not fill the shape."""
    by_name = {spec.name: spec for spec in signature}
    for number, payload in enumerate(payloads, start=1):
        where = f"payload {number}"
        if payload.tensors is None:
            if isinstance(payload.raw, dict):
                unknown = sorted(set(payload.raw) - set(by_name))
                missing = sorted(set(by_name) - set(payload.raw))
                if unknown or missing:
                    raise _mismatch(model, where, unknown, missing, by_name)
            continue
        names = [t.name for t in payload.tensors]
        unknown = sorted(set(names) - set(by_name))
        missing = sorted(set(by_name) - set(names))
        if unknown or missing:
            raise _mismatch(model, where, unknown, missing, by_name)
        for tensor in payload.tensors:
            codec.check_tensor(tensor, by_name[tensor.name], model=model, source=where)


def _mismatch(
    model: str,
    where: str,
    unknown: list[str],
    missing: list[str],
    by_name: dict[str, TensorSpec],
) -> ValidationError:
    parts = []
    if unknown:
        parts.append(f"unknown input(s) {', '.join(unknown)}")
    if missing:
        parts.append(f"missing input(s) {', '.join(missing)}")
    expected = ", ".join(f"{s.name} {s.dtype} {list(s.shape)}" for s in by_name.values())
    return ValidationError(
        f"{' and '.join(parts)} for model '{model}', whose inputs are: {expected}",
        source=where,
    )
