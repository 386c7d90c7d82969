"""What both renderers share: reading a package's spec from the store, fixed file metadata."""

from __future__ import annotations

from mlops_cli.errors import ValidationError
from mlops_cli.modelspec import SPEC_FILE, ModelSpec, SpecError
from mlops_cli.package import PackageManifest
from mlops_cli.stores.base import ArtifactStore
from mlops_cli.validation import parse_yaml

# Rendered files get these, whatever the source files had: same inputs, same bytes.
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z
FILE_MODE = 0o644
EXEC_MODE = 0o755


def package_spec(store: ArtifactStore, manifest: PackageManifest) -> ModelSpec:
    """The ModelSpec stored in a package (its mlops.yaml), verified and validated."""
    try:
        entry = manifest.file(SPEC_FILE)
    except KeyError:
        raise ValidationError(
            f"package {manifest.name} ({manifest.digest[:12]}) has no {SPEC_FILE}",
            hint="upload a model folder with an mlops.yaml, or one whose spec names the hf:// source",
        ) from None
    with store.open_blob(entry.sha256) as reader:
        data = reader.read(entry.size + 1)
    source = f"{manifest.name}/{SPEC_FILE}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8: {exc}", source=source) from None
    document = parse_yaml(text, source=source, error_class=SpecError)
    return ModelSpec.from_dict(document or {}, source=source)
