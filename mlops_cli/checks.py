"""Semantic checks of a model folder beyond its schema: files exist, the entry point defines what
the runtime calls, shapes and batching agree, streaming has a decoupled runtime, memory is known.

Checks read files and parse code with :mod:`ast`; they never import or run the model's code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlops_cli.modelspec import SPEC_FILE, ModelSpec, SpecError, load_spec


@dataclass(frozen=True)
class Finding:
    severity: Literal["error", "warning"]
    key_path: str
    message: str

    def line(self, source: str) -> str:
        return (
            f"{source}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{source}: {self.message}"
        )


def _definitions(tree: ast.Module) -> tuple[set[str], dict[str, set[str]]]:
    """Top-level functions, and classes with their method names."""
    functions: set[str] = set()
    classes: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return functions, classes


def _check_entrypoint(model_dir: Path, spec: ModelSpec) -> list[Finding]:
    path = model_dir / spec.entrypoint
    if not path.is_file():
        return [Finding("error", "entrypoint", f"file {spec.entrypoint} does not exist")]
    if path.suffix != ".py":
        return [Finding("error", "entrypoint", f"{spec.entrypoint} is not a Python file")]
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return [
            Finding(
                "error", "entrypoint", f"{spec.entrypoint}:{exc.lineno}: syntax error: {exc.msg}"
            )
        ]
    except (OSError, UnicodeDecodeError) as exc:
        return [Finding("error", "entrypoint", f"cannot read {spec.entrypoint}: {exc}")]
    functions, classes = _definitions(tree)
    findings: list[Finding] = []
    if spec.runtime == "triton-python":
        if spec.entrypoint != "model.py" and not spec.entrypoint.endswith("/model.py"):
            findings.append(
                Finding(
                    "error", "entrypoint", "the Triton python backend loads a file named model.py"
                )
            )
        methods = classes.get("TritonPythonModel")
        if methods is None:
            findings.append(
                Finding(
                    "error", "entrypoint", f"{spec.entrypoint} defines no class TritonPythonModel"
                )
            )
        elif "execute" not in methods:
            findings.append(
                Finding(
                    "error", "entrypoint", "TritonPythonModel has no execute(self, requests) method"
                )
            )
        if spec.streaming and "get_response_sender" not in source:
            findings.append(
                Finding(
                    "warning",
                    "streaming",
                    "a decoupled model sends its responses through request.get_response_sender(), "
                    f"which {spec.entrypoint} never calls",
                )
            )
    elif spec.runtime == "sagemaker-mms" and "handle" not in functions:
        findings.append(
            Finding(
                "error",
                "entrypoint",
                f"{spec.entrypoint} defines no function handle(data, context)",
            )
        )
    return findings


def _check_tensors(spec: ModelSpec) -> list[Finding]:
    findings: list[Finding] = []
    for group in ("inputs", "outputs"):
        seen: set[str] = set()
        for index, tensor in enumerate(getattr(spec, group)):
            where = f"{group}[{index}]"
            if tensor.name in seen:
                findings.append(
                    Finding("error", f"{where}.name", f"duplicate tensor name {tensor.name!r}")
                )
            seen.add(tensor.name)
            if 0 in tensor.shape:
                findings.append(
                    Finding("error", f"{where}.shape", "a dimension of 0 holds no data")
                )
    return findings


def _check_batching(spec: ModelSpec) -> list[Finding]:
    batching = spec.batching
    findings: list[Finding] = []
    if batching.dynamic and batching.max_batch_size == 0:
        findings.append(
            Finding("error", "batching.dynamic", "dynamic batching needs max_batch_size > 0")
        )
    too_big = [size for size in batching.preferred_batch_sizes if size > batching.max_batch_size]
    if too_big:
        findings.append(
            Finding(
                "error",
                "batching.preferred_batch_sizes",
                f"{too_big} exceed max_batch_size {batching.max_batch_size}",
            )
        )
    if spec.streaming and batching.dynamic:
        findings.append(
            Finding(
                "warning",
                "batching.dynamic",
                "decoupled models batch poorly; prefer dynamic: false",
            )
        )
    return findings


def _check_files(model_dir: Path, spec: ModelSpec) -> list[Finding]:
    findings: list[Finding] = []
    for index, pattern in enumerate(spec.weights):
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            findings.append(
                Finding("error", f"weights[{index}]", f"{pattern!r} leaves the model folder")
            )
        elif not any(path.is_file() for path in model_dir.glob(pattern)):
            findings.append(Finding("error", f"weights[{index}]", f"no file matches {pattern!r}"))
    if spec.source is None and not spec.weights:
        findings.append(
            Finding(
                "warning", "weights", "no weights listed: the package holds only code and config"
            )
        )
    return findings


def check_model(model_dir: Path, spec: ModelSpec) -> list[Finding]:
    """Every semantic finding for a folder whose spec already passed the schema."""
    findings = [*_check_entrypoint(model_dir, spec), *_check_tensors(spec), *_check_batching(spec)]
    findings.extend(_check_files(model_dir, spec))
    if spec.streaming and spec.runtime != "triton-python":
        findings.append(
            Finding(
                "error",
                "streaming",
                f"runtime {spec.runtime} cannot stream; streaming needs the decoupled triton-python runtime",
            )
        )
    if spec.resources.memory_mb is None:
        findings.append(
            Finding(
                "warning",
                "resources.memory_mb",
                "memory is not declared; placement needs it (declare it, or measure it with `mlops profile`)",
            )
        )
    return findings


def validate_model_dir(model_dir: Path) -> tuple[ModelSpec, list[Finding]]:
    """Load the spec (SpecError on schema errors) and run every semantic check.

    Raises SpecError for the first error finding; returns the spec and the warnings otherwise.
    """
    if not model_dir.is_dir():
        raise SpecError(f"model folder {model_dir} does not exist or is not a folder")
    spec = load_spec(model_dir)
    findings = check_model(model_dir, spec)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SpecError(
            first.message + more, source=str(model_dir / SPEC_FILE), key_path=first.key_path
        )
    return spec, findings
