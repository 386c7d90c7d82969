"""Write a stored package's files back into a folder, each verified against its digest."""

from __future__ import annotations

from pathlib import Path

from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.stores.base import ArtifactStore


def download_package(
    store: ArtifactStore, digest: str, dest: Path, *, reporter: Reporter = SILENT
) -> PackageManifest:
    """Write every file of a package under ``dest``, each verified against its digest."""
    manifest = store.get_manifest(digest)
    with running(
        reporter, f"downloading {manifest.name}", total=manifest.total_bytes, unit="bytes"
    ) as task:
        for entry in manifest.files:
            target = dest / entry.path
            store.read_blob(entry.sha256, target, on_bytes=task.advance)
            target.chmod(0o755 if entry.executable else 0o644)
    return manifest
