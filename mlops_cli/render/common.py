"""What both renderers share: reading a package's spec from the store, fixed file metadata.

A package's ``mlops.yaml`` is read through :meth:`ModelSpec.from_dict` like any other spec, at
most :data:`~mlops_cli.validation.MAX_YAML_BYTES` of it, and its entrypoint must be a file of
the package (one its runtime can load): a stored package never runs code its digest does not
cover.
"""

from __future__ import annotations

from mlops_cli.errors import ValidationError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.spec.modelspec import SPEC_FILE, ModelSpec, SpecError, runtime_entrypoint_problem
from mlops_cli.stores.base import ArtifactStore
from mlops_cli.validation import MAX_YAML_BYTES, parse_yaml

# Rendered files get these, whatever the source files had: same inputs, same bytes.
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z
FILE_MODE = 0o644
EXEC_MODE = 0o755


def package_spec(store: ArtifactStore, manifest: PackageManifest) -> ModelSpec:
    """The ModelSpec stored in a package (its mlops.yaml), verified and validated."""
    spec = stored_spec(store, manifest)
    if spec is None:
        raise ValidationError(
            f"package {manifest.name} ({manifest.digest[:12]}) has no {SPEC_FILE}",
            hint="upload a model folder with an mlops.yaml, or one whose spec names the hf:// source",
        )
    return spec


def stored_spec(store: ArtifactStore, manifest: PackageManifest) -> ModelSpec | None:
    """The package's validated ModelSpec, or None when it has no mlops.yaml (an hf:// package)."""
    try:
        entry = manifest.file(SPEC_FILE)
    except KeyError:
        return None
    source = f"{manifest.name}/{SPEC_FILE}"
    if entry.size > MAX_YAML_BYTES:
        raise SpecError(
            f"the file is {entry.size} bytes, more than the {MAX_YAML_BYTES} allowed", source=source
        )
    with store.open_blob(entry.sha256) as reader:
        data = reader.read(entry.size + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8: {exc}", source=source) from None
    document = parse_yaml(text, source=source, error_class=SpecError)
    spec = ModelSpec.from_dict(document or {}, source=source)
    loadable = runtime_entrypoint_problem(spec)
    if loadable is not None:
        raise SpecError(
            loadable.message, source=source, key_path=loadable.key_path, hint=loadable.hint
        )
    if not any(item.path == spec.entrypoint for item in manifest.files):
        raise SpecError(
            f"{spec.entrypoint} is not a file of the package",
            source=source,
            key_path="entrypoint",
            hint="upload the model folder again",
        )
    return spec
