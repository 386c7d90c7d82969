"""Semantic checks of a model folder beyond its schema: files exist, the entry point defines what
the runtime calls, shapes and batching agree, streaming has a decoupled runtime, memory is known,
weights hold bytes.

:func:`inspect_model_dir` is what ``mlops validate`` reports: every schema problem, every finding
and the folder scan ``upload`` runs, as one list of :class:`Finding`. :func:`validate_model_dir`
is what ``upload`` runs: the same checks, raising the first error.

A weights pattern that matches only empty files is a warning, not an error (exit 0): an empty
file can be a deliberate placeholder, and the upload still says so.

Checks read files and parse code with :mod:`ast`; they never import or run the model's code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlops_cli.packages.manifest import PackageError
from mlops_cli.packages.scan import scan_folder
from mlops_cli.spec.modelspec import (
    SPEC_FILE,
    ModelSpec,
    SpecError,
    entrypoint_leaves_folder,
    read_yaml,
    runtime_entrypoint_problem,
    spec_problems,
)


@dataclass(frozen=True)
class Finding:
    severity: Literal["error", "warning"]
    key_path: str
    message: str
    hint: str | None = None

    def line(self, source: str) -> str:
        text = (
            f"{source}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{source}: {self.message}"
        )
        return f"{text} (hint: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "key_path": self.key_path,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class Inspection:
    """What ``mlops validate`` reports for a folder; ``spec`` is None when the schema failed."""

    source: str
    spec: ModelSpec | None
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]


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
    if entrypoint_leaves_folder(model_dir, spec.entrypoint):
        return [
            Finding(
                "error",
                "entrypoint",
                f"{spec.entrypoint} is a symlink out of the model folder",
                "copy the file into the model folder instead of linking to it",
            )
        ]
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
    loadable = runtime_entrypoint_problem(spec)
    if loadable is not None:
        findings.append(Finding("error", loadable.key_path, loadable.message, loadable.hint))
    if spec.runtime == "triton-python":
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
    elif spec.runtime == "sagemaker-mms" and spec.entrypoint == "code/inference.py":
        # the SageMaker inference toolkit's conventions (see mlops_cli.render.sagemaker_layout)
        missing = [name for name in ("model_fn", "transform_fn") if name not in functions]
        if missing:
            findings.append(
                Finding(
                    "error",
                    "entrypoint",
                    f"{spec.entrypoint} defines no {' and no '.join(missing)}: the framework "
                    "container's handler service serves it through model_fn and transform_fn",
                )
            )
    elif spec.runtime == "sagemaker-mms" and "handle" not in functions:
        findings.append(
            Finding(
                "error",
                "entrypoint",
                f"{spec.entrypoint} defines no function handle(data, context)",
                "or follow the SageMaker inference toolkit: code/inference.py with model_fn "
                "and transform_fn",
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
            continue
        matched = sorted(path for path in model_dir.glob(pattern) if path.is_file())
        if not matched:
            findings.append(Finding("error", f"weights[{index}]", f"no file matches {pattern!r}"))
        elif all(path.stat().st_size == 0 for path in matched):
            names = ", ".join(path.relative_to(model_dir).as_posix() for path in matched[:3])
            more = f" and {len(matched) - 3} more" if len(matched) > 3 else ""
            findings.append(
                Finding(
                    "warning",
                    f"weights[{index}]",
                    f"{pattern!r} matches only empty files ({names}{more})",
                    "check that the weights were written completely",
                )
            )
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


def _scan_finding(model_dir: Path, spec: ModelSpec) -> list[Finding]:
    """The scan ``upload`` runs (unsafe entries refused), as a finding."""
    try:
        scan_folder(model_dir, ignore=spec.ignore)
    except PackageError as exc:
        message = exc.message
        if exc.source and message.startswith(f"{exc.source}: "):
            message = message[len(exc.source) + 2 :]
        return [Finding("error", "", message, exc.hint)]
    return []


def _inspect(model_dir: Path, *, scan: bool) -> Inspection:
    if not model_dir.is_dir():
        raise SpecError(
            f"model folder {model_dir} does not exist or is not a folder",
            hint="give the folder holding mlops.yaml",
        )
    source = str(model_dir / SPEC_FILE)
    document = read_yaml(model_dir / SPEC_FILE) or {}
    problems = spec_problems(document)
    if problems:
        findings = [Finding("error", p.key_path, p.message, p.hint) for p in problems]
        return Inspection(source, None, tuple(findings))
    spec = ModelSpec.from_valid_dict(document)
    findings = check_model(model_dir, spec)
    if scan:
        findings.extend(_scan_finding(model_dir, spec))
    return Inspection(source, spec, tuple(findings))


def inspect_model_dir(model_dir: Path) -> Inspection:
    """Every schema problem and finding of a model folder, and the upload's folder scan.

    Raises SpecError only when there is nothing to inspect: no folder, or an ``mlops.yaml``
    that is missing, too large or not YAML.
    """
    return _inspect(model_dir, scan=True)


def validate_model_dir(model_dir: Path) -> tuple[ModelSpec, list[Finding]]:
    """Load the spec and run every semantic check (the caller scans the folder itself).

    Raises SpecError for the first error, counting the others; returns the spec and the
    warnings otherwise.
    """
    inspection = _inspect(model_dir, scan=False)
    errors = inspection.errors
    if errors or inspection.spec is None:
        first = errors[0]
        more = (
            f" (and {len(errors) - 1} more; `mlops validate` lists them)" if len(errors) > 1 else ""
        )
        raise SpecError(
            first.message + more,
            source=inspection.source,
            key_path=first.key_path or None,
            hint=first.hint,
        )
    return inspection.spec, list(inspection.findings)
