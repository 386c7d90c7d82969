"""Request payloads: synthesized from a model's signature, read from a JSONL file, or expanded from a
JSON template; and checked against the signature before any load is sent.

A :class:`Payload` holds either named tensors (KServe v2 inputs, which every Triton protocol can
encode) or a raw JSON document (sent as is to plain HTTP JSON and SageMaker endpoints).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.errors import ValidationError

DTYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
)  # fmt: skip
_WORDS = ("the", "model", "serves", "tokens", "fast", "and", "well", "today")


@dataclass(frozen=True)
class InputSpec:
    """One input of a model signature (KServe v2 metadata: name, datatype, shape with -1)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: tuple[Any, ...]


@dataclass(frozen=True)
class Payload:
    """One request body: named tensors, or a raw JSON document."""

    tensors: tuple[Tensor, ...] | None = None
    raw: Any = None

    def v2_json(self) -> dict[str, Any]:
        """The KServe v2 ``infer`` request body."""
        if self.tensors is None:
            return self.raw  # type: ignore[no-any-return]
        return {
            "inputs": [
                {
                    "name": t.name,
                    "datatype": t.datatype,
                    "shape": list(t.shape),
                    "data": list(t.data),
                }
                for t in self.tensors
            ]
        }

    def generate_json(self) -> dict[str, Any]:
        """The body of Triton's ``generate``/``generate_stream`` extension: one value per input."""
        if self.tensors is None:
            return self.raw  # type: ignore[no-any-return]
        return {t.name: (t.data[0] if len(t.data) == 1 else list(t.data)) for t in self.tensors}

    def body(self) -> bytes:
        return json.dumps(self.v2_json() if self.tensors is not None else self.raw).encode()


def _value(datatype: str, rng: random.Random, index: int) -> Any:
    if datatype == "BYTES":
        return " ".join(rng.choice(_WORDS) for _ in range(3))
    if datatype == "BOOL":
        return rng.random() < 0.5
    if datatype.startswith(("INT", "UINT")):
        # Small positive integers: integer inputs are usually counts, ids or token limits.
        return rng.randint(1, 8)
    return round(rng.uniform(-1.0, 1.0), 4)


def synthesize(signature: Sequence[InputSpec], *, count: int = 16, seed: int = 0) -> list[Payload]:
    """``count`` distinct payloads matching ``signature`` (dynamic dimensions become 1)."""
    rng = random.Random(seed)
    payloads = []
    for index in range(count):
        tensors = []
        for spec in signature:
            shape = tuple(1 if dim < 0 else dim for dim in spec.shape)
            size = math.prod(shape)
            data = tuple(_value(spec.datatype, rng, index) for _ in range(size))
            tensors.append(Tensor(spec.name, spec.datatype, shape, data))
        payloads.append(Payload(tensors=tuple(tensors)))
    return payloads


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
            data = item["data"]
            flat = tuple(_flatten(data))
            tensors.append(
                Tensor(str(item["name"]), str(item["datatype"]), tuple(item["shape"]), flat)
            )
        return Payload(tensors=tuple(tensors))
    return Payload(raw=doc)


def _flatten(data: Any) -> Iterable[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


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


def _nested_shape(value: Any) -> tuple[int, ...]:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def with_signature(payload: Payload, signature: Sequence[InputSpec]) -> Payload:
    """A raw ``{"input": value, ...}`` document (the form ``mlops invoke --input`` takes) as named
    tensors with the signature's datatypes; a value without the batch dimension gets one.
    Anything else is returned as it is (and checked as it is)."""
    by_name = {spec.name: spec for spec in signature}
    raw = payload.raw
    if payload.tensors is not None or not isinstance(raw, dict) or set(raw) != set(by_name):
        return payload
    tensors = []
    for name, value in raw.items():
        spec = by_name[name]
        shape = _nested_shape(value)
        if not shape:
            shape = tuple(1 for _ in spec.shape)
        elif len(shape) == len(spec.shape) - 1:
            shape = (1, *shape)
        data = tuple(_flatten(value))
        if spec.datatype != "BYTES" and not all(
            isinstance(v, int | float) and not isinstance(v, str) for v in data
        ):
            raise ValidationError(
                f"input '{name}' holds values that are not numbers; the model takes {spec.datatype}",
                source="payload",
            )
        tensors.append(Tensor(name, spec.datatype, shape, data))
    return Payload(tensors=tuple(tensors))


def check_against(
    payloads: Sequence[Payload], signature: Sequence[InputSpec], *, model: str
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
            spec = by_name[tensor.name]
            if tensor.datatype != spec.datatype:
                raise ValidationError(
                    f"input '{tensor.name}' is {tensor.datatype}, model '{model}' expects "
                    f"{spec.datatype}",
                    source=where,
                )
            if len(tensor.shape) != len(spec.shape) or any(
                want >= 0 and got != want
                for got, want in zip(tensor.shape, spec.shape, strict=False)
            ):
                raise ValidationError(
                    f"input '{tensor.name}' has shape {list(tensor.shape)}, model '{model}' "
                    f"accepts {list(spec.shape)} (-1: any size)",
                    source=where,
                )
            if math.prod(tensor.shape) != len(tensor.data):
                raise ValidationError(
                    f"input '{tensor.name}' has {len(tensor.data)} values for shape "
                    f"{list(tensor.shape)}",
                    source=where,
                )


def _mismatch(
    model: str,
    where: str,
    unknown: list[str],
    missing: list[str],
    by_name: dict[str, InputSpec],
) -> ValidationError:
    parts = []
    if unknown:
        parts.append(f"unknown input(s) {', '.join(unknown)}")
    if missing:
        parts.append(f"missing input(s) {', '.join(missing)}")
    expected = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in by_name.values())
    return ValidationError(
        f"{' and '.join(parts)} for model '{model}', whose inputs are: {expected}",
        source=where,
    )
