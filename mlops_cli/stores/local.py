"""``file://`` artifact store: a folder on a local or shared file system (the embedded default)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.package import FileChangedError, hash_file
from mlops_cli.stores.base import (
    ArtifactStore,
    OnBytes,
    Unchanged,
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
        self._lock = threading.Lock()

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

    def put_blob(
        self,
        digest: str,
        path: Path,
        *,
        on_bytes: OnBytes | None = None,
        unchanged: Unchanged | None = None,
    ) -> int:
        target = self.root / blob_key(check_digest(digest))
        if target.is_file():
            return 0
        if unchanged is not None:
            # Kernel-side copy (no pass through Python), then the identity check stands in for a
            # second hash: the bytes copied are the bytes hashed unless the file changed.
            tmp = self._temporary(target.parent, digest)
            try:
                shutil.copyfile(path, tmp)
                if not unchanged():
                    raise FileChangedError(str(path))
                sent = self._publish(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if on_bytes is not None:
                on_bytes(sent)
            self._count(sent)
            return sent
        return self._store_as(path, lambda tmp: _copy_hashing(path, tmp, on_bytes), expect=digest)[
            2
        ]

    can_ingest = True

    def ingest(
        self, path: Path, *, on_bytes: OnBytes | None = None, unchanged: Unchanged | None = None
    ) -> tuple[str, int, int]:
        if unchanged is None:
            return self._store_as(path, lambda tmp: _copy_hashing(path, tmp, on_bytes))

        def copy_while_hashing(tmp: Path) -> tuple[str, int]:
            # The kernel copies (sendfile) while this thread hashes the same file; the identity
            # check afterwards proves both saw the same bytes.
            with ThreadPoolExecutor(max_workers=1) as copier:
                copied = copier.submit(shutil.copyfile, path, tmp)
                digest, size = hash_file(path, on_bytes)
                copied.result()
            if not unchanged():
                raise FileChangedError(str(path))
            return digest, size

        return self._store_as(path, copy_while_hashing)

    def _store_as(
        self, path: Path, fill: Callable[[Path], tuple[str, int]], *, expect: str | None = None
    ) -> tuple[str, int, int]:
        """Fill a temporary file (``fill`` returns the digest and size of what it wrote), then
        publish it under that digest: (digest, size, bytes newly stored)."""
        folder = self.root / "blobs" / "sha256"
        tmp = self._temporary(folder, expect or "ingest")
        try:
            digest, size = fill(tmp)
            if expect is not None and digest != expect:
                raise FileChangedError(str(path))
            target = folder / digest
            if target.is_file():
                tmp.unlink()
                return digest, size, 0
            self._publish(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._count(size)
        return digest, size, size

    def _temporary(self, folder: Path, label: str) -> Path:
        self._ensure(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{label[:16]}.")
        os.close(fd)
        return Path(tmp)

    def _publish(self, tmp: Path, target: Path) -> int:
        size = tmp.stat().st_size
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        return size

    def _count(self, sent: int) -> None:
        with self._lock:
            self.stats.blob_bytes_sent += sent
            self.stats.blobs_sent += 1

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


def _copy_hashing(source: Path, dest: Path, on_bytes: OnBytes | None) -> tuple[str, int]:
    """Copy ``source`` to ``dest`` in one pass, hashing the bytes written."""
    hasher = hashlib.sha256()
    size = 0
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    with open(source, "rb", buffering=0) as reader, open(dest, "wb", buffering=0) as out:
        while count := reader.readinto(buffer):
            hasher.update(view[:count])
            out.write(view[:count])
            size += count
            if on_bytes is not None:
                on_bytes(count)
    return hasher.hexdigest(), size
