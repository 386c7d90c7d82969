"""``file://`` artifact store: a folder on a local or shared file system (the embedded default)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.package import FileChangedError
from mlops_cli.stores.base import (
    ArtifactStore,
    OnBytes,
    VerifyingReader,
    blob_key,
    check_digest,
    manifest_key,
)
from mlops_cli.workspace import Workspace, write_atomic

COPY_CHUNK = 8 << 20


class LocalStore(ArtifactStore):
    """Blobs and manifests as files; writes go to a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.uri = root.as_uri()

    @classmethod
    def from_uri(cls, uri: str) -> LocalStore:
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost") or not parsed.path:
            raise UsageError(f"bad file store URI {uri!r}", hint="use file:///absolute/path")
        return cls(Path(unquote(parsed.path)))

    def _ensure(self, folder: Path) -> Path:
        Workspace(self.root).ensure()
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def missing_blobs(self, digests: Iterable[str]) -> set[str]:
        return {d for d in digests if not (self.root / blob_key(check_digest(d))).is_file()}

    def put_blob(self, digest: str, path: Path, *, on_bytes: OnBytes | None = None) -> int:
        target = self.root / blob_key(check_digest(digest))
        if target.is_file():
            return 0
        folder = self._ensure(target.parent)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest[:16]}.")
        hasher = hashlib.sha256()
        sent = 0
        try:
            buffer = bytearray(COPY_CHUNK)
            view = memoryview(buffer)
            with open(path, "rb", buffering=0) as source, os.fdopen(fd, "wb", buffering=0) as out:
                while count := source.readinto(buffer):
                    hasher.update(view[:count])
                    out.write(view[:count])
                    sent += count
                    if on_bytes is not None:
                        on_bytes(count)
            if hasher.hexdigest() != digest:
                raise FileChangedError(str(path))
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stats.blob_bytes_sent += sent
        self.stats.blobs_sent += 1
        return sent

    def open_blob(self, digest: str) -> VerifyingReader:
        path = self.root / blob_key(check_digest(digest))
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the reader
        except FileNotFoundError:
            raise NotFoundError(f"blob sha256:{digest} is not in {self.uri}") from None
        return VerifyingReader(
            raw, digest=digest, size=os.fstat(raw.fileno()).st_size, what=f"blob {digest[:12]}"
        )

    def blob_size(self, digest: str) -> int:
        try:
            return (self.root / blob_key(check_digest(digest))).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob sha256:{digest} is not in {self.uri}") from None

    def _write_manifest(self, digest: str, data: bytes) -> None:
        target = self.root / manifest_key(digest)
        self._ensure(target.parent)
        write_atomic(target, data)

    def _read_manifest(self, digest: str) -> bytes | None:
        try:
            return (self.root / manifest_key(digest)).read_bytes()
        except FileNotFoundError:
            return None
