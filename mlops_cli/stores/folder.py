"""A read-only view of a package that has been built but not uploaded: its blobs are the model
folder's own files. Lets renderers work on a local folder without an upload first."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mlops_cli.errors import NotFoundError, NotSupportedError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.stores.base import ArtifactStore, OnBytes, Unchanged, VerifyingReader


class FolderView(ArtifactStore):
    """Serves ``open_blob`` from local files (verified on read); writes are not supported."""

    def __init__(self, manifest: PackageManifest, paths: dict[str, Path], *, label: str) -> None:
        super().__init__()
        self.manifest = manifest
        self.paths = paths
        self.uri = label

    def package_uri(self, digest: str) -> str:
        return self.uri

    def missing_blobs(self, digests: Iterable[str]) -> set[str]:
        return {d for d in digests if d not in self.paths}

    def put_blob(
        self,
        digest: str,
        path: Path,
        *,
        on_bytes: OnBytes | None = None,
        unchanged: Unchanged | None = None,
    ) -> int:
        raise NotSupportedError(f"{self.uri} is a local folder, not a store")

    def open_blob(self, digest: str, *, quarantine_damaged: bool = True) -> VerifyingReader:
        # A model folder's own files are never moved aside: a mismatch means the file changed.
        path = self.paths.get(digest)
        if path is None:
            raise NotFoundError(f"no file with sha256:{digest} in {self.uri}")
        raw = open(path, "rb")  # noqa: SIM115 - closed by the reader
        return VerifyingReader(raw, digest=digest, size=self.blob_size(digest), what=str(path))

    def blob_size(self, digest: str) -> int:
        for entry in self.manifest.files:
            if entry.sha256 == digest:
                return entry.size
        raise NotFoundError(f"no file with sha256:{digest} in {self.uri}")

    def _write_manifest(self, digest: str, data: bytes) -> None:
        raise NotSupportedError(f"{self.uri} is a local folder, not a store")

    def _read_manifest(self, digest: str) -> bytes | None:
        return self.manifest.to_bytes() if digest == self.manifest.digest else None
