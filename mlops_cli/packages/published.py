"""The upload that has nothing to do: a model already published whole, known from the hash cache.

When every file of a folder is in the hash cache unchanged, the manifest is known without reading
a byte; if the store already holds it and every blob it names (a blob that failed verification was
moved to quarantine and must be sent again), the package was validated and stored whole when it
was first uploaded, so existence checks are all this upload costs. Anything unusual (a Hugging
Face source, a spec that does not parse, a file not in the cache) means "maybe work": the full
upload path then validates and reports whatever is wrong.
"""

from __future__ import annotations

from pathlib import Path

from mlops_cli.packages.hashcache import HashCache
from mlops_cli.packages.scan import scan_folder
from mlops_cli.packages.source import PreparedSource
from mlops_cli.packages.upload_result import UploadResult
from mlops_cli.spec.modelspec import SPEC_FILE
from mlops_cli.stores.base import ArtifactStore


def already_published(
    source: str | Path, store: ArtifactStore, cache: HashCache, started: float
) -> UploadResult | None:
    """The result of an upload of ``source`` that has nothing to do, or None when there may be
    work."""
    folder = Path(source)
    if str(source).startswith("hf://") or not (folder / SPEC_FILE).is_file():
        return None
    try:
        from mlops_cli.spec.modelspec import read_yaml

        document = read_yaml(folder / SPEC_FILE)  # bounded: a hostile spec costs nothing here
        name, ignore = document["name"], tuple(document.get("ignore", ()))
        if not isinstance(name, str) or "source" in document:
            return None
        files = scan_folder(folder, ignore=ignore)
    except Exception:
        return None  # the full path reports whatever is wrong
    digests = [cache.lookup(item) for item in files]
    if any(digest is None for digest in digests):
        return None
    prepared = PreparedSource(name=name, files=files, origin={}, spec=None)
    manifest = prepared.manifest([d for d in digests if d is not None])
    if not store.has_package(manifest.digest) or store.missing_blobs(manifest.blob_digests()):
        return None
    return UploadResult.of(
        manifest, store.package_uri(manifest.digest), sent=0, blobs_sent=0, started=started
    )
