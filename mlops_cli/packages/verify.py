"""Check that a stored package can be served before anything refers to it.

Registering a version (and deploying one) must never record a package that a server could not
load: the manifest must hash to its digest (the store verifies it on read) and every blob must be
in the store at its size; ``verify="full"`` also reads and hashes every blob.
"""

from __future__ import annotations

from typing import Literal

from mlops_cli.errors import NotFoundError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.stores.base import ArtifactStore, DigestMismatchError


def verify_package(
    store: ArtifactStore,
    digest: str,
    *,
    verify: Literal["sizes", "full"] = "sizes",
    reporter: Reporter = SILENT,
) -> PackageManifest:
    """Check a package can be served: manifest digest, and every blob present at its size
    (``full``: read and hashed). Raises NotFoundError or DigestMismatchError."""
    manifest = store.get_manifest(digest)
    sizes = {entry.sha256: entry.size for entry in manifest.files}
    missing = store.missing_blobs(sizes)
    if missing:
        path = next(e.path for e in manifest.files if e.sha256 in missing)
        raise NotFoundError(
            f"package {manifest.name} ({digest[:12]}) is incomplete: {len(missing)} blob(s) missing, e.g. {path}",
            hint="upload the model again",
        )
    for entry in manifest.files:
        actual = store.blob_size(entry.sha256)
        if actual != entry.size:
            raise DigestMismatchError(
                what=f"{entry.path} is {actual} bytes in the store, {entry.size} in the manifest",
                expected=entry.sha256,
                actual="?" * 12,
            )
    if verify == "full":
        with running(reporter, "verifying blobs", total=manifest.total_bytes, unit="bytes") as task:
            for digest_ in sizes:
                with store.open_blob(digest_) as reader:
                    while chunk := reader.read(8 << 20):
                        task.advance(len(chunk))
    return manifest
