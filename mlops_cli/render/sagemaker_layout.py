"""What a version's SageMaker ``model.tar.gz`` holds: the layout that the container of its
runtime loads as it is, with nothing added on the serving side (:func:`tarball_layout`).

- **Triton runtimes** (SageMaker's Triton container): one model repository entry,
  ``<name>/config.pbtxt`` and ``<name>/1/<every package file>``. The container registers the
  extracted folder as a repository whose one model subfolder it maps to the TargetModel, and loads
  it with the entry's own ``config.pbtxt`` (GPU instance groups when the device is ``gpu``).
- **sagemaker-mms** (multi-model-server in the SageMaker framework containers): the package's
  files at the root, in one of the two ways multi-model-server finds a model's code:

  * a *custom service*: the entrypoint is a module at the root that defines
    ``handle(data, context)``, named by ``MAR-INF/MANIFEST.json`` (``"handler": "<module>:handle"``),
    which multi-model-server reads in place of its default handler service. A package that ships
    its own manifest keeps it (it must name the entrypoint); otherwise one is written.
  * the *inference toolkit's handler service* (the container's default): no ``MAR-INF``, and
    ``code/inference.py`` (the toolkit's default ``SAGEMAKER_PROGRAM``) defining ``model_fn`` and
    ``transform_fn``. The framework image of the table (MXNet) serves a model that is not an MXNet
    one only through ``transform_fn``, so both are required.

A layout that the container would refuse is refused here, before anything is published
(:class:`LayoutError`). Nothing here does I/O beyond reading the entrypoint (and a shipped
manifest) from the store, verified.
"""

from __future__ import annotations

import ast
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from mlops_cli.errors import ValidationError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.spec.modelspec import SPEC_FILE, ModelSpec
from mlops_cli.stores.base import ArtifactStore

MAR_MANIFEST = "MAR-INF/MANIFEST.json"
TOOLKIT_ENTRYPOINT = "code/inference.py"
TOOLKIT_FUNCTIONS = ("model_fn", "transform_fn")
TRITON_VERSION = "1"
MAX_CODE_BYTES = 1 << 20  # an entrypoint or manifest larger than this is not read to check it


class LayoutError(ValidationError):
    """The package cannot be laid out as its runtime's SageMaker container loads it."""


@dataclass(frozen=True)
class TarEntry:
    """One file of the tarball: a blob of the package (``sha256``) or bytes the render wrote."""

    path: str
    size: int
    executable: bool = False
    sha256: str | None = None
    data: bytes | None = None


def is_triton_runtime(runtime: str) -> bool:
    return runtime.startswith("triton")


def tarball_layout(
    store: ArtifactStore,
    manifest: PackageManifest,
    spec: ModelSpec,
    *,
    device: str | None = None,
) -> list[TarEntry]:
    """The tarball's files, sorted by path. ``device`` (``gpu``/``cpu``) overrides what the spec
    asks for a Triton runtime's instance groups; other runtimes ignore it."""
    if is_triton_runtime(spec.runtime):
        entries = _triton_layout(manifest, spec, device)
    elif spec.runtime == "sagemaker-mms":
        entries = _mms_layout(store, manifest, spec)
    else:
        raise LayoutError(
            f"no SageMaker container runs the {spec.runtime!r} runtime",
            source=f"{manifest.name}/{SPEC_FILE}",
            key_path="runtime",
        )
    return sorted(entries, key=lambda entry: entry.path)


def _package_files(manifest: PackageManifest, prefix: str = "") -> list[TarEntry]:
    return [
        TarEntry(prefix + item.path, item.size, item.executable, sha256=item.sha256)
        for item in manifest.files
    ]


def _written(path: str, data: bytes) -> TarEntry:
    return TarEntry(path, len(data), data=data)


def _triton_layout(
    manifest: PackageManifest, spec: ModelSpec, device: str | None
) -> list[TarEntry]:
    from mlops_cli.render.triton import config_pbtxt

    config = config_pbtxt(spec, model_name=spec.name, device=device).encode()
    return [
        _written(f"{spec.name}/config.pbtxt", config),
        *_package_files(manifest, f"{spec.name}/{TRITON_VERSION}/"),
    ]


def _mms_layout(store: ArtifactStore, manifest: PackageManifest, spec: ModelSpec) -> list[TarEntry]:
    source = f"{manifest.name}/{SPEC_FILE}"
    names = _top_level_names(store, manifest, spec.entrypoint, source)
    shipped = {item.path for item in manifest.files}
    if spec.entrypoint == TOOLKIT_ENTRYPOINT:
        missing = [name for name in TOOLKIT_FUNCTIONS if name not in names]
        if MAR_MANIFEST in shipped:
            raise LayoutError(
                f"{MAR_MANIFEST} makes multi-model-server skip the inference toolkit's handler "
                f"service, which is what runs {TOOLKIT_ENTRYPOINT}",
                source=source,
                key_path="entrypoint",
                hint=f"remove {MAR_MANIFEST}, or use a handle(data, context) entrypoint",
            )
        if missing:
            raise LayoutError(
                f"{TOOLKIT_ENTRYPOINT} defines no {' and no '.join(missing)}: the framework "
                "container's handler service serves a model that is not an MXNet one only "
                "through model_fn and transform_fn",
                source=source,
                key_path="entrypoint",
                hint="define model_fn(model_dir) and transform_fn(model, data, content_type, accept)",
            )
        return _package_files(manifest)
    if "/" in spec.entrypoint or not spec.entrypoint.endswith(".py"):
        raise LayoutError(
            f"multi-model-server imports a handler module from the root of the model folder, "
            f"not {spec.entrypoint!r}",
            source=source,
            key_path="entrypoint",
            hint=f"move it to the root, or follow the inference toolkit: {TOOLKIT_ENTRYPOINT} "
            "with model_fn and transform_fn",
        )
    module = spec.entrypoint.removesuffix(".py")
    if MAR_MANIFEST in shipped:
        function = _shipped_handler(store, manifest, module, source)
        if function not in names:
            raise LayoutError(
                f"{MAR_MANIFEST} names {module}:{function}, which {spec.entrypoint} does not define",
                source=source,
                key_path="entrypoint",
            )
        return _package_files(manifest)
    if "handle" not in names:
        raise LayoutError(
            f"{spec.entrypoint} defines no handle(data, context) for multi-model-server",
            source=source,
            key_path="entrypoint",
            hint=f"define handle(data, context), or follow the inference toolkit: "
            f"{TOOLKIT_ENTRYPOINT} with model_fn and transform_fn",
        )
    return [*_package_files(manifest), _written(MAR_MANIFEST, mar_manifest(f"{module}:handle"))]


def mar_manifest(handler: str) -> bytes:
    """The ``MAR-INF/MANIFEST.json`` that names ``handler`` (as multi-model-server's model
    archiver writes one), byte for byte the same for the same handler."""
    document = {
        "specificationVersion": "1.0",
        "implementationVersion": "1.0",
        "modelServerVersion": "1.0",
        "runtime": "python",
        "model": {"modelVersion": "1.0", "handler": handler},
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _read_small(store: ArtifactStore, manifest: PackageManifest, path: str, source: str) -> bytes:
    entry = manifest.file(path)
    if entry.size > MAX_CODE_BYTES:
        raise LayoutError(
            f"{path} is {entry.size} bytes, more than the {MAX_CODE_BYTES} read to check it",
            source=source,
        )
    with store.open_blob(entry.sha256) as reader:
        data: bytes = reader.read(entry.size + 1)
    return data


def _top_level_names(
    store: ArtifactStore, manifest: PackageManifest, path: str, source: str
) -> set[str]:
    """The names a module defines at its top level (functions, assignments, imports)."""
    try:
        tree = ast.parse(_read_small(store, manifest, path, source), filename=path)
    except (SyntaxError, ValueError) as exc:
        raise LayoutError(
            f"{path} does not parse as Python: {exc}", source=source, key_path="entrypoint"
        ) from None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _shipped_handler(
    store: ArtifactStore, manifest: PackageManifest, module: str, source: str
) -> str:
    """The function the package's own ``MAR-INF/MANIFEST.json`` names in ``module``."""
    try:
        document = json.loads(_read_small(store, manifest, MAR_MANIFEST, source))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{MAR_MANIFEST} is not JSON: {exc}", source=source) from None
    model = document.get("model") if isinstance(document, Mapping) else None
    handler = model.get("handler") if isinstance(model, Mapping) else None
    if not isinstance(handler, str) or not handler:
        raise LayoutError(f"{MAR_MANIFEST} names no model.handler", source=source)
    named, _, function = handler.partition(":")
    # multi-model-server keeps the last path component, without ".py", as the module name
    named = posixpath.basename(named).removesuffix(".py")
    if named != module:
        raise LayoutError(
            f"{MAR_MANIFEST} runs {handler!r}, but mlops.yaml's entrypoint is {module}.py",
            source=source,
            key_path="entrypoint",
            hint="make the manifest's handler and the entrypoint the same module",
        )
    return function or "handle"


__all__ = [
    "MAR_MANIFEST",
    "TOOLKIT_ENTRYPOINT",
    "LayoutError",
    "TarEntry",
    "is_triton_runtime",
    "mar_manifest",
    "tarball_layout",
]
