"""Build a package in two steps: hash a source into a manifest, then push it to a store.

The upload pipeline (:mod:`mlops_cli.packages.upload`) does both at once; the two-step form is
what rendering a local folder without uploading it (:func:`folder_view`) and tests that need a
manifest before any store is touched use. :func:`push_package` keeps the store's promise all the
same: the blobs the store lacks first, then the manifest, last.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_cli.packages.hashcache import HashCache
from mlops_cli.packages.hashing import build_manifest
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.packages.scan import ScannedFile, unchanged_check
from mlops_cli.packages.source import prepare_source
from mlops_cli.packages.upload import FILE_WORKERS
from mlops_cli.packages.upload_result import UploadResult
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.spec.modelspec import ModelSpec
from mlops_cli.stores.base import ArtifactStore

if TYPE_CHECKING:
    from mlops_cli.spec.checks import Finding


@dataclass(frozen=True)
class PackageBuild:
    manifest: PackageManifest
    scanned: dict[str, ScannedFile]  # blob digest -> a file holding those bytes
    spec: ModelSpec | None
    warnings: tuple[Finding, ...] = ()


def build_package(
    source: str | Path,
    *,
    reporter: Reporter = SILENT,
    cache: HashCache | None = None,
) -> PackageBuild:
    """Scan, validate and hash ``source`` into a manifest. Nothing is written but the cache."""
    prepared = prepare_source(source)
    total = sum(item.size for item in prepared.files)
    with running(
        reporter, f"hashing {len(prepared.files)} files", total=total, unit="bytes"
    ) as task:
        manifest = build_manifest(
            prepared.name,
            prepared.files,
            source=prepared.origin,
            on_bytes=task.advance,
            cache=cache,
        )
    scanned: dict[str, ScannedFile] = {}
    for entry, item in zip(manifest.files, prepared.files, strict=True):
        scanned.setdefault(entry.sha256, item)
    return PackageBuild(
        manifest=manifest, scanned=scanned, spec=prepared.spec, warnings=prepared.warnings
    )


def push_package(
    build: PackageBuild,
    store: ArtifactStore,
    *,
    reporter: Reporter = SILENT,
    workers: int = FILE_WORKERS,
) -> UploadResult:
    """Send the blobs ``store`` lacks, then publish the manifest. Idempotent."""
    started = time.perf_counter()
    manifest = build.manifest
    digests = manifest.blob_digests()
    absent = store.missing_blobs(digests)
    missing = [d for d in digests if d in absent]
    to_send = sum(build.scanned[d].size for d in missing)
    sent_before = store.stats.blob_bytes_sent
    with running(
        reporter, f"uploading {len(missing)} of {len(digests)} blobs", total=to_send, unit="bytes"
    ) as task:

        def send(digest: str) -> None:
            item = build.scanned[digest]
            store.put_blob(
                digest, item.absolute, on_bytes=task.advance, unchanged=unchanged_check(item)
            )

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for future in [pool.submit(send, d) for d in missing]:
                future.result()
    uri = store.put_manifest(manifest)
    sent = store.stats.blob_bytes_sent - sent_before
    return UploadResult.of(manifest, uri, sent=sent, blobs_sent=len(missing), started=started)


def folder_view(build: PackageBuild, label: str) -> ArtifactStore:
    """A read-only store over a built package's own files (render without uploading)."""
    from mlops_cli.stores.folder import FolderView

    return FolderView(
        build.manifest, {d: item.absolute for d, item in build.scanned.items()}, label=label
    )
