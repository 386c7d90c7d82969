"""The one KServe v2 codec: values as people write them <-> tensors as Triton takes them.

A *signature* is a model's inputs as Triton publishes them in its model metadata: one
:class:`~mlops_cli.spec.modelspec.TensorSpec` per input whose shape includes the batch dimension (-1)
when the model batches. :func:`signature_of` builds it from a ModelSpec (whose shapes leave the batch
dimension out); a server's metadata (:meth:`TritonClient.model_metadata`) gives the same thing.

Promises:

- :func:`encode_value` turns one value (nested lists, or a scalar) into a :class:`Tensor`: the data
  flattened and converted to the datatype's Python type (float for FP/BF, int for INT/UINT, bool
  for BOOL, str for BYTES), a value with one dimension less than the signature given the batch
  dimension, a scalar filling a shape of ones. A value that is not a number for a numeric input is
  a :class:`ValidationError`; the shape is checked by :func:`check_tensor`, which names the input.
- :func:`encode_inputs` encodes one request's named values, refusing unknown and missing names.
- :func:`infer_body` and :func:`generate_body` are the ``infer`` and ``generate``/
  ``generate_stream`` request documents; :func:`decode_outputs` reads an ``infer`` answer back to
  nested lists of the answer's shape.
- :func:`synthesize` makes distinct requests from a signature alone (dynamic dimensions become 1).
- :func:`grpc_inputs` and :func:`grpc_outputs` are the same tensors for ``tritonclient.grpc``;
  only they import numpy and tritonclient, lazily. Everything else is plain Python, so the HTTP
  paths (deploy, perftest bodies) never pay for numpy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_cli.errors import ValidationError
from mlops_cli.spec.modelspec import DTYPE_NUMPY, ModelSpec, TensorSpec

_WORDS = ("the", "model", "serves", "tokens", "fast", "and", "well", "today")
# Output fields of a generate/generate_stream event that are not outputs.
EVENT_FIELDS = frozenset({"model_name", "model_version", "id"})


@dataclass(frozen=True)
class Tensor:
    """One KServe v2 tensor: its data flat, in row-major order."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "data": list(self.data),
        }


def signature_of(spec: ModelSpec) -> tuple[TensorSpec, ...]:
    """A ModelSpec's inputs as Triton publishes them (the batch dimension -1 when it batches)."""
    if spec.batching.max_batch_size <= 0:
        return spec.inputs
    return tuple(TensorSpec(t.name, t.dtype, (-1, *t.shape)) for t in spec.inputs)


# -- encoding ---------------------------------------------------------------------------------


def nested_shape(value: Any) -> tuple[int, ...]:
    """The shape of nested lists, read along the first elements."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def flatten(value: Any) -> Iterable[Any]:
    """The leaves of nested lists, in row-major order."""
    if isinstance(value, list):
        for item in value:
            yield from flatten(item)
    else:
        yield value


def _converter(datatype: str) -> Any:
    if datatype == "BYTES":
        return lambda v: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
    if datatype == "BOOL":
        return bool
    if datatype.startswith(("INT", "UINT")):
        return int
    return float


def encode_value(spec: TensorSpec, value: Any, *, source: str | None = None) -> Tensor:
    """One input's value as a tensor of ``spec`` (see the module docstring)."""
    shape = nested_shape(value)
    if not shape:
        shape = tuple(1 for _ in spec.shape)
    elif len(shape) == len(spec.shape) - 1:
        shape = (1, *shape)
    data = tuple(flatten(value))
    if spec.dtype != "BYTES" and not all(
        isinstance(v, int | float) and not isinstance(v, str) for v in data
    ):
        raise ValidationError(
            f"input '{spec.name}' holds values that are not numbers; the model takes {spec.dtype}",
            source=source,
        )
    convert = _converter(spec.dtype)
    return Tensor(spec.name, spec.dtype, shape, tuple(convert(v) for v in data))


def check_tensor(tensor: Tensor, spec: TensorSpec, *, model: str, source: str | None) -> None:
    """Raise :class:`ValidationError` unless ``tensor`` fits ``spec``: its datatype, a shape the
    signature allows (-1: any size) and as many values as the shape holds."""
    if tensor.datatype != spec.dtype:
        raise ValidationError(
            f"input '{tensor.name}' is {tensor.datatype}, model '{model}' expects {spec.dtype}",
            source=source,
        )
    if len(tensor.shape) != len(spec.shape) or any(
        want >= 0 and got != want for got, want in zip(tensor.shape, spec.shape, strict=False)
    ):
        raise ValidationError(
            f"input '{tensor.name}' has shape {list(tensor.shape)}, model '{model}' "
            f"accepts {list(spec.shape)} (-1: any size)",
            source=source,
        )
    if math.prod(tensor.shape) != len(tensor.data):
        raise ValidationError(
            f"input '{tensor.name}' has {len(tensor.data)} values for shape {list(tensor.shape)}",
            source=source,
        )


def encode_inputs(
    signature: Sequence[TensorSpec], values: Mapping[str, Any], *, model: str
) -> tuple[Tensor, ...]:
    """One request's ``{input name: value}`` as checked tensors, in the signature's order."""
    known = {t.name: t for t in signature}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValidationError(
            f"input {unknown[0]!r} is not an input of {model}",
            hint=f"inputs: {', '.join(known)}",
        )
    tensors = []
    for spec in signature:
        if spec.name not in values:
            raise ValidationError(
                f"input {spec.name!r} ({spec.dtype} {list(spec.shape)}) is missing",
                hint="--input '{\"" + spec.name + "\": ...}'",
            )
        tensor = encode_value(spec, values[spec.name])
        check_tensor(tensor, spec, model=model, source=None)
        tensors.append(tensor)
    return tuple(tensors)


def infer_body(tensors: Sequence[Tensor]) -> dict[str, Any]:
    """The KServe v2 ``infer`` request document."""
    return {"inputs": [t.to_json() for t in tensors]}


def generate_body(tensors: Sequence[Tensor]) -> dict[str, Any]:
    """The document of Triton's ``generate``/``generate_stream`` extension: one value per input
    (a single value as itself, more as a flat list)."""
    return {t.name: (t.data[0] if len(t.data) == 1 else list(t.data)) for t in tensors}


# -- decoding ---------------------------------------------------------------------------------


def reshape(data: Sequence[Any], shape: Sequence[int]) -> Any:
    """Flat ``data`` as nested lists of ``shape`` (a shape of one dimension or none: as is)."""
    if len(shape) <= 1:
        return list(data)
    size = math.prod(shape[1:])
    return [reshape(data[i : i + size], shape[1:]) for i in range(0, len(data), size)]


def decode_outputs(outputs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An ``infer`` answer's ``outputs`` as ``{name: nested lists of the output's shape}``."""
    return {str(o["name"]): reshape(o.get("data", []), o.get("shape", [])) for o in outputs}


def event_outputs(event: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs of one ``generate_stream`` event (without its model and id fields)."""
    return {k: v for k, v in event.items() if k not in EVENT_FIELDS}


def values_of(tensors: Iterable[Tensor]) -> dict[str, Any]:
    """Tensors back as ``{name: nested lists}`` (what :func:`encode_inputs` takes)."""
    return {t.name: reshape(t.data, t.shape) if t.shape else list(t.data) for t in tensors}


# -- synthesizing -----------------------------------------------------------------------------


def _synthetic_value(datatype: str, rng: random.Random) -> Any:
    if datatype == "BYTES":
        return " ".join(rng.choice(_WORDS) for _ in range(3))
    if datatype == "BOOL":
        return rng.random() < 0.5
    if datatype.startswith(("INT", "UINT")):
        # Small positive integers: integer inputs are usually counts, ids or token limits.
        return rng.randint(1, 8)
    return round(rng.uniform(-1.0, 1.0), 4)


def synthesize(
    signature: Sequence[TensorSpec], *, count: int = 1, seed: int = 0
) -> list[tuple[Tensor, ...]]:
    """``count`` distinct requests fitting ``signature`` (dynamic dimensions become 1), the same
    ones for the same seed."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        tensors = []
        for spec in signature:
            shape = tuple(1 if dim < 0 else dim for dim in spec.shape)
            data = tuple(_synthetic_value(spec.dtype, rng) for _ in range(math.prod(shape)))
            tensors.append(Tensor(spec.name, spec.dtype, shape, data))
        requests.append(tuple(tensors))
    return requests


# -- gRPC (tritonclient) ----------------------------------------------------------------------


def grpc_inputs(tensors: Iterable[Tensor]) -> list[Any]:
    """The tensors as ``tritonclient.grpc.InferInput`` objects."""
    import numpy as np
    from tritonclient.grpc import InferInput

    prepared = []
    for tensor in tensors:
        if tensor.datatype == "BYTES":
            array = np.array([str(v).encode() for v in tensor.data], dtype=object)
        else:
            array = np.array(tensor.data, dtype=DTYPE_NUMPY[tensor.datatype])
        item = InferInput(tensor.name, list(tensor.shape), tensor.datatype)
        item.set_data_from_numpy(array.reshape(tensor.shape))
        prepared.append(item)
    return prepared


def grpc_outputs(result: Any, names: Iterable[str]) -> dict[str, Any]:
    """The outputs ``names`` of a ``tritonclient`` result as nested lists (BYTES as str)."""
    outputs: dict[str, Any] = {}
    for name in names:
        array = result.as_numpy(name)
        if array is not None:
            outputs[name] = _strings(array.tolist())
    return outputs


def _strings(values: Any) -> Any:
    if isinstance(values, list):
        return [_strings(v) for v in values]
    return values.decode(errors="replace") if isinstance(values, bytes) else values


__all__ = [
    "Tensor",
    "check_tensor",
    "decode_outputs",
    "encode_inputs",
    "encode_value",
    "event_outputs",
    "generate_body",
    "grpc_inputs",
    "grpc_outputs",
    "infer_body",
    "signature_of",
    "synthesize",
    "values_of",
]
