"""``mlops tune --apply``: the chosen configuration registered as a new version.

The new version's package is the tuned version's, file for file, except ``mlops.yaml``: its
``instances`` and ``batching`` keys carry the chosen values (the rest of the document is kept;
YAML comments are not, as the document is written out again). Only that one blob is stored; the
others are the same blobs. The version records where it came from in its lineage
(``tuned_from``: model, version and package; ``tune``: the SLA, the objective, the server and
what the chosen configuration measured), so ``mlops models show`` tells a tuned version apart.
"""

from __future__ import annotations

import getpass
import platform
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_cli import __version__
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.registry.base import Registry, VersionRecord
from mlops_cli.spec.modelspec import SPEC_FILE, ModelSpec, SpecError
from mlops_cli.stores.base import ArtifactStore
from mlops_cli.tune.space import ServingConfig
from mlops_cli.validation import MAX_YAML_BYTES, parse_yaml


def tuned_document(document: dict[str, Any], config: ServingConfig) -> dict[str, Any]:
    """``document`` (a parsed mlops.yaml) with ``config``'s values."""
    tuned = dict(document)
    tuned["instances"] = config.instances
    batching: dict[str, Any] = {"max_batch_size": config.max_batch_size}
    if config.dynamic:
        batching["dynamic"] = True
        if config.preferred_batch_sizes:
            batching["preferred_batch_sizes"] = list(config.preferred_batch_sizes)
        batching["max_queue_delay_us"] = config.queue_delay_us
    tuned["batching"] = batching
    return tuned


def _read_spec_document(store: ArtifactStore, manifest: PackageManifest) -> Any:
    entry = manifest.file(SPEC_FILE)
    with store.open_blob(entry.sha256) as reader:
        data = reader.read(min(entry.size, MAX_YAML_BYTES) + 1)
    return parse_yaml(
        data.decode("utf-8"), source=f"{manifest.name}/{SPEC_FILE}", error_class=SpecError
    )


def tuned_package(
    store: ArtifactStore, manifest: PackageManifest, config: ServingConfig, header: str
) -> tuple[PackageManifest, str]:
    """Store the package with the tuned mlops.yaml (``header`` as its opening comment); return
    its manifest and URI."""
    import yaml

    from mlops_cli.packages.hashing import hash_file

    document = tuned_document(_read_spec_document(store, manifest), config)
    ModelSpec.from_dict(document, source=f"{manifest.name}/{SPEC_FILE} (tuned)")
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = comment + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    with tempfile.TemporaryDirectory(prefix="mlops-tune-") as folder:
        path = Path(folder) / SPEC_FILE
        path.write_text(text, encoding="utf-8")
        digest, size = hash_file(path)
        if store.missing_blobs([digest]):
            store.put_blob(digest, path)
    files = tuple(
        replace(entry, sha256=digest, size=size) if entry.path == SPEC_FILE else entry
        for entry in manifest.files
    )
    tuned = PackageManifest(name=manifest.name, files=files, source=manifest.source)
    return tuned, store.put_manifest(tuned)


def register_tuned(
    registry: Registry,
    store: ArtifactStore,
    manifest: PackageManifest,
    version: VersionRecord,
    config: ServingConfig,
    tune: dict[str, Any],
) -> VersionRecord:
    """Register ``config`` as the next version of ``version``'s model; ``tune`` (the SLA, the
    objective, the server, the figures) goes into its lineage. The same tuned package again is
    the version it already is (registering is idempotent)."""
    from mlops_cli.packages.lineage import code_digest
    from mlops_cli.registry.base import NewVersion

    header = (
        f"Tuned by mlops tune from {version.model} v{version.version} under the SLA "
        f"{tune['sla']}\n(objective {tune['objective']}, measured on {tune['server']}): "
        f"{config.describe()}."
    )
    tuned, uri = tuned_package(store, manifest, config, header)
    lineage = {
        **{k: v for k, v in version.lineage.items() if k not in ("tuned_from", "tune")},
        "tuned_from": {
            "model": version.model,
            "version": version.version,
            "package_digest": version.package_digest,
        },
        "tune": {**tune, "config": config.to_dict(), "at": datetime.now(UTC).isoformat()},
        "user": _user(),
        "host": platform.node(),
        "tool": f"mlops {__version__}",
    }
    registered = registry.register_version(
        version.model,
        NewVersion(
            package_digest=tuned.digest,
            package_uri=uri,
            code_digest=code_digest(tuned),
            source=dict(version.source),
            lineage=lineage,
            tags=dict(version.tags),
            description=f"v{version.version} tuned under {tune['sla']}: {config.describe()}",
        ),
    )
    return registered.version


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


__all__ = ["register_tuned", "tuned_document", "tuned_package"]
