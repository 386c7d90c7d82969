"""ModelSpec: ``mlops.yaml`` loaded, validated against ``schemas/model.schema.json`` and turned into
frozen dataclasses.

Every reader of a spec (validate, upload, register, render, mme-local) goes through
:meth:`ModelSpec.from_dict`, so the rules that keep a package's code inside the package hold
everywhere: ``entrypoint`` is a relative path with no ``..`` (it is stored normalised), and
:func:`load_spec` also refuses one that a symlink leads out of the folder. Whether the runtime can
load it (a ``triton-python`` entrypoint is ``model.py`` at the package root, the one file Triton's
python backend loads) is :func:`runtime_entrypoint_problem`, which the folder checks and the
readers of stored packages apply.

(The design sketch called this module ``manifest.py``; here "manifest" names a package's list of
files and digests, so the spec has a module of its own.)
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_cli.errors import ValidationError
from mlops_cli.validation import (
    SchemaProblem,
    excerpt,
    raise_first,
    read_yaml_file,
    schema_problems,
)

SPEC_FILE = "mlops.yaml"
RUNTIMES = ("triton-python", "sagemaker-mms")
DTYPE_NUMPY = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BF16": "float32",  # numpy has no bfloat16; clients send it as float32
    "BYTES": "object",
}


class SpecError(ValidationError):
    """mlops.yaml is malformed, does not match the schema, or fails a semantic check."""


TRITON_PYTHON_FILE = "model.py"


def entrypoint_problem(entrypoint: str) -> SchemaProblem | None:
    """Why ``entrypoint`` is not a path inside the model folder, or None when it is."""
    shown = excerpt(entrypoint)
    inside = "copy the file into the model folder and give its path relative to the folder"
    if "\\" in entrypoint or "\0" in entrypoint:
        return SchemaProblem("entrypoint", f"{shown} is not a relative POSIX path", inside)
    path = PurePosixPath(entrypoint)
    if path.is_absolute():
        return SchemaProblem("entrypoint", f"{shown} is an absolute path", inside)
    if ".." in path.parts:
        return SchemaProblem("entrypoint", f"{shown} leaves the model folder ('..')", inside)
    return None


def runtime_entrypoint_problem(spec: ModelSpec) -> SchemaProblem | None:
    """Why the runtime cannot load ``spec.entrypoint``: Triton's python backend loads
    ``model.py`` at the root of the model's version folder and no other file."""
    if spec.runtime == "triton-python" and spec.entrypoint != TRITON_PYTHON_FILE:
        return SchemaProblem(
            "entrypoint",
            f"the Triton python backend loads {TRITON_PYTHON_FILE} at the root of the model "
            f"folder, not {excerpt(spec.entrypoint)}",
            f"move it to {TRITON_PYTHON_FILE} (the modules it imports can stay in a subfolder)",
        )
    return None


def spec_problems(document: Any) -> list[SchemaProblem]:
    """Every schema violation of a parsed ``mlops.yaml``, then the rules the schema cannot say."""
    problems = schema_problems(document, "model")
    if problems:
        return problems
    entrypoint = entrypoint_problem(document["entrypoint"])
    return [entrypoint] if entrypoint else []


def entrypoint_leaves_folder(model_dir: Path, entrypoint: str) -> bool:
    """True when ``<model_dir>/<entrypoint>`` (symlinks followed) lies outside ``model_dir``."""
    root = model_dir.resolve()
    return not (root / entrypoint).resolve().is_relative_to(root)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 0
    dynamic: bool = False
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0


@dataclass(frozen=True)
class GpuSpec:
    count: int = 1
    kind: str | None = None


@dataclass(frozen=True)
class Resources:
    memory_mb: int | None = None
    cpus: float | None = None  # cores one copy needs (a SageMaker inference component's share)
    gpu: GpuSpec | None = None


@dataclass(frozen=True)
class Warmup:
    name: str
    batch_size: int = 1
    count: int = 1
    data: str = "zero"


@dataclass(frozen=True)
class HFSource:
    """``hf://org/name@revision``; revision defaults to ``main``."""

    uri: str
    repo_id: str
    revision: str
    allow_patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, uri: str, allow_patterns: tuple[str, ...] = ()) -> HFSource:
        if not uri.startswith("hf://"):
            raise ValidationError(
                f"not a Hugging Face URI: {uri!r}", hint="use hf://org/name@revision"
            )
        body = uri.removeprefix("hf://")
        repo_id, _, revision = body.partition("@")
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(parts):
            raise ValidationError(
                f"not a Hugging Face URI: {uri!r}", hint="use hf://org/name@revision"
            )
        return cls(
            uri=uri, repo_id=repo_id, revision=revision or "main", allow_patterns=allow_patterns
        )


@dataclass(frozen=True)
class ModelSpec:
    """A validated ``mlops.yaml``."""

    name: str
    runtime: str
    entrypoint: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    description: str = ""
    weights: tuple[str, ...] = ()
    source: HFSource | None = None
    batching: Batching = field(default_factory=Batching)
    streaming: bool = False
    resources: Resources = field(default_factory=Resources)
    instances: int = 1
    replicas: int = 1  # servers of a fleet that serve it (placement keeps them apart)
    warmup: tuple[Warmup, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    @property
    def wants_gpu(self) -> bool:
        return self.resources.gpu is not None and self.resources.gpu.count > 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = SPEC_FILE) -> ModelSpec:
        """Build from a parsed document; raises SpecError naming ``source`` and the key path."""
        raise_first(spec_problems(data), source=source, error_class=SpecError)
        return cls.from_valid_dict(data)

    @classmethod
    def from_valid_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Build from a document that :func:`spec_problems` found nothing wrong with."""

        def tensors(key: str) -> tuple[TensorSpec, ...]:
            return tuple(
                TensorSpec(name=t["name"], dtype=t["dtype"], shape=tuple(t["shape"]))
                for t in data[key]
            )

        batching = data.get("batching", {})
        resources = data.get("resources", {})
        gpu = resources.get("gpu")
        hf = data.get("source")
        return cls(
            name=data["name"],
            runtime=data["runtime"],
            entrypoint=posixpath.normpath(data["entrypoint"]),
            inputs=tensors("inputs"),
            outputs=tensors("outputs"),
            description=data.get("description", ""),
            weights=tuple(data.get("weights", ())),
            source=HFSource.parse(hf["uri"], tuple(hf.get("allow_patterns", ()))) if hf else None,
            batching=Batching(
                max_batch_size=batching.get("max_batch_size", 0),
                dynamic=batching.get("dynamic", False),
                preferred_batch_sizes=tuple(batching.get("preferred_batch_sizes", ())),
                max_queue_delay_us=batching.get("max_queue_delay_us", 0),
            ),
            streaming=data.get("streaming", False),
            resources=Resources(
                memory_mb=resources.get("memory_mb"),
                cpus=float(resources["cpus"]) if "cpus" in resources else None,
                gpu=GpuSpec(count=gpu.get("count", 1), kind=gpu.get("kind")) if gpu else None,
            ),
            instances=data.get("instances", 1),
            replicas=data.get("replicas", 1),
            warmup=tuple(
                Warmup(
                    name=w["name"],
                    batch_size=w.get("batch_size", 1),
                    count=w.get("count", 1),
                    data=w.get("data", "zero"),
                )
                for w in data.get("warmup", ())
            ),
            labels=dict(data.get("labels", {})),
            ignore=tuple(data.get("ignore", ())),
        )


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a syntax error is a SpecError with line and column."""
    missing = SpecError(f"no {path.name} in {path.parent}", hint="create one with `mlops init DIR`")
    return read_yaml_file(path, error_class=SpecError, missing=missing)


def load_spec(model_dir: Path) -> ModelSpec:
    """Read and schema-validate ``<model_dir>/mlops.yaml``; its entrypoint must stay in the
    folder with symlinks followed."""
    path = model_dir / SPEC_FILE
    spec = ModelSpec.from_dict(read_yaml(path) or {}, source=str(path))
    if entrypoint_leaves_folder(model_dir, spec.entrypoint):
        raise SpecError(
            f"{spec.entrypoint} is a symlink out of the model folder",
            source=str(path),
            key_path="entrypoint",
            hint="copy the file into the model folder instead of linking to it",
        )
    return spec
