"""``file://`` artifact store: a folder on a local or shared file system (the embedded default).

Blobs are written to a temporary file (``blobs/sha256/.<label>.<random>``) and renamed into
place. The writing process holds an exclusive ``flock`` on each temporary file for as long as the
file exists, so the first write of each store object removes the temporary files that no live
process holds (those of an upload that was killed) and never one a concurrent upload is writing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.packages.hashing import hash_file
from mlops_cli.packages.manifest import FileChangedError
from mlops_cli.packages.reference import manifest_key
from mlops_cli.stores.base import (
    ArtifactStore,
    OnBytes,
    Unchanged,
    VerifyingReader,
    blob_key,
    check_digest,
    is_digest,
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
        self._swept = False

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
            with self._temporary(target.parent, digest) as tmp:
                shutil.copyfile(path, tmp)
                if not unchanged():
                    raise FileChangedError(str(path))
                sent = _publish(tmp, target)
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
            # The file is too fresh for its times to prove anything: the digest comes from the
            # bytes copied, and a second read must find the same bytes, or the copy may mix
            # the file's old and new content (a state that never existed on disk).
            def copy_then_reread(tmp: Path) -> tuple[str, int]:
                digest, size = _copy_hashing(path, tmp, on_bytes)
                if hash_file(path) != (digest, size):
                    raise FileChangedError(str(path))
                return digest, size

            return self._store_as(path, copy_then_reread)

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
        with self._temporary(folder, expect or "ingest") as tmp:
            digest, size = fill(tmp)
            if expect is not None and digest != expect:
                raise FileChangedError(str(path))
            target = folder / digest
            if target.is_file():
                tmp.unlink()
                return digest, size, 0
            _publish(tmp, target)
        self._count(size)
        return digest, size, size

    @contextmanager
    def _temporary(self, folder: Path, label: str) -> Iterator[Path]:
        """A new temporary file in ``folder``, held (flock) by this process until the block
        ends; removed on an error unless it was published (renamed) meanwhile."""
        self._ensure(folder)
        self._sweep_once(folder)
        while True:
            fd, name = tempfile.mkstemp(dir=folder, prefix=f".{label[:16]}.")
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A sweep may have removed the file between its creation and the lock: start over.
            if _same_file(name, fd):
                break
            os.close(fd)
        try:
            yield Path(name)
        except BaseException:
            if _same_file(name, fd):
                os.unlink(name)
            raise
        finally:
            os.close(fd)

    def _sweep_once(self, folder: Path) -> None:
        with self._lock:
            if self._swept:
                return
            self._swept = True
        removed, size = remove_stale_temporaries(folder)
        with self._lock:
            self.stats.stale_temporaries_removed += removed
            self.stats.stale_bytes_removed += size

    def _count(self, sent: int) -> None:
        with self._lock:
            self.stats.blob_bytes_sent += sent
            self.stats.blobs_sent += 1

    def open_blob(self, digest: str, *, quarantine_damaged: bool = True) -> VerifyingReader:
        path = self.root / blob_key(check_digest(digest))
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the reader
        except FileNotFoundError:
            raise NotFoundError(f"blob sha256:{digest} is not in {self.uri}") from None
        seen = os.fstat(raw.fileno())
        return VerifyingReader(
            raw,
            digest=digest,
            size=seen.st_size,
            what=f"blob {digest[:12]}",
            quarantine=(lambda: self._quarantine(digest, seen)) if quarantine_damaged else None,
        )

    def _quarantine(self, digest: str, seen: os.stat_result) -> str | None:
        """Move the blob that was read (``seen``) to quarantine/; None if it was replaced."""
        path = self.root / blob_key(digest)
        try:
            if not os.path.samestat(os.stat(path), seen):
                return None
        except FileNotFoundError:
            return None
        folder = self.root / "quarantine" / "sha256"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{digest}.{time.time_ns()}"
        os.rename(path, target)
        return target.relative_to(self.root).as_posix()

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        try:
            entries = list(os.scandir(self.root / "blobs" / "sha256"))
        except FileNotFoundError:
            return
        for entry in entries:
            if not is_digest(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    yield entry.name, entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # quarantined meanwhile

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


def _publish(tmp: Path, target: Path) -> int:
    size = tmp.stat().st_size
    os.chmod(tmp, 0o444)
    os.replace(tmp, target)
    return size


def _same_file(name: str, fd: int) -> bool:
    """Whether ``name`` is still the file open as ``fd``."""
    try:
        return os.path.samestat(os.stat(name), os.fstat(fd))
    except FileNotFoundError:
        return False


def remove_stale_temporaries(folder: Path) -> tuple[int, int]:
    """Remove the temporary files in ``folder`` that no live process holds (their writer was
    killed); return how many and their bytes. A file whose lock is held is never touched."""
    removed = size = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0, 0
    for entry in entries:
        if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not ours to read
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(entry.path, fd):
                length = os.fstat(fd).st_size
                os.unlink(entry.path)
                removed, size = removed + 1, size + length
        except OSError:
            continue  # held by a live writer (BlockingIOError), or removed meanwhile
        finally:
            os.close(fd)
    return removed, size


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
