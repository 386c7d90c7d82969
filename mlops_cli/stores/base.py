"""The ArtifactStore contract: content-addressed blobs and package manifests.

Layout under the store's root (a folder, or an S3 bucket and prefix)::

    blobs/sha256/<hex>              file contents, named by their sha256
    packages/sha256/<hex>.json      package manifests, named by the manifest's sha256
    quarantine/sha256/<hex>.<n>     blobs that failed verification, moved aside for inspection

Promises every implementation keeps (tests/conformance/test_store_contract.py checks each):

- ``put_blob`` streams the file (never the whole file in memory) and makes the blob visible only
  once the bytes sent are known to be the bytes that hashed to ``digest``: it hashes them again
  on the way, or, when the caller passes ``unchanged`` (a check that the file's identity, size and
  times are still those seen when it was hashed; see
  :func:`mlops_cli.packages.scan.unchanged_check`), it calls that check after sending and before
  publishing. On a mismatch it raises :class:`~mlops_cli.packages.manifest.FileChangedError` and
  leaves nothing behind. It is idempotent.
- ``ingest`` (only where ``can_ingest``) stores a file whose digest is not known yet, computing
  it from the very bytes it stores. Before publishing, the file is proved unchanged: by
  ``unchanged`` when the caller passes it, else (a file too fresh for its times to be trusted)
  by reading it again and finding the same digest. A file changed during the copy raises
  :class:`~mlops_cli.packages.manifest.FileChangedError` and nothing is published, whatever its
  age.
- ``put_manifest`` is called last, after every blob is stored: a package exists whole or not at
  all. It refuses a manifest whose blobs are missing.
- Reads verify: ``read_blob`` and ``open_blob`` raise :class:`DigestMismatchError` when the
  stored bytes do not hash to the digest, and ``read_blob`` leaves no partial file. A blob that
  fails verification is moved aside to ``quarantine/sha256/<hex>.<n>`` (unless the caller asks
  not to), so the blob counts as missing and the next upload of any package holding it sends it
  again. Only the very object that was read is moved: one replaced meanwhile stays.
- ``list_blobs`` lists every blob (digest and size); :func:`mlops_cli.stores.verify.verify_store`
  checks them all.
- Errors of the underlying client (botocore, OS) are translated to mlops errors here.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlops_cli.errors import MlopsError, NotFoundError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.packages.reference import PackageRef

OnBytes = Callable[[int], None]
Unchanged = Callable[[], bool]
# Moves a damaged blob aside; returns where it went, or None when it was not moved.
Quarantine = Callable[[], "str | None"]


class DigestMismatchError(MlopsError):
    """Stored bytes do not hash to the digest they are stored under."""

    def __init__(
        self, *, what: str, expected: str, actual: str, quarantined: str | None = None
    ) -> None:
        hint = (
            f"the damaged blob was moved to {quarantined}; upload the model again to restore it"
            if quarantined
            else "the store is corrupt or was tampered with; upload the model again"
        )
        super().__init__(
            f"{what}: stored bytes hash to sha256:{actual[:12]}…, expected sha256:{expected[:12]}…",
            hint=hint,
        )
        self.expected = expected
        self.actual = actual
        self.quarantined = quarantined


class PackageNotFoundError(NotFoundError):
    def __init__(self, digest: str, store_uri: str) -> None:
        super().__init__(
            f"no package sha256:{digest} in {store_uri}",
            hint="list what is there, or upload it with `mlops upload DIR`",
        )


@dataclass
class StoreStats:
    """Bytes and objects this store object has written (for tests, benchmarks and --json)."""

    blob_bytes_sent: int = 0
    blobs_sent: int = 0
    manifests_sent: int = 0
    stale_temporaries_removed: int = 0
    stale_bytes_removed: int = 0


def blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest}"


def is_digest(text: str) -> bool:
    """Whether ``text`` is a sha256 digest in lowercase hex (a blob's name)."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise NotFoundError(f"not a sha256 digest: {digest!r}")
    return digest


class VerifyingReader:
    """A read-only stream that hashes what passes through and checks the digest at the end.

    On a mismatch it calls ``quarantine`` (when given) before raising, so the error can say where
    the damaged bytes went."""

    def __init__(
        self,
        raw: BinaryIO,
        *,
        digest: str,
        size: int,
        what: str,
        quarantine: Quarantine | None = None,
    ) -> None:
        self.raw = raw
        self.expected = digest
        self.size = size
        self.what = what
        self.quarantine = quarantine
        self._hash = hashlib.sha256()
        self._seen = 0
        self._verified = False

    def read(self, amount: int = -1) -> bytes:
        chunk = self.raw.read(amount)
        if chunk:
            self._hash.update(chunk)
            self._seen += len(chunk)
        if (not chunk and amount != 0) or self._seen >= self.size:
            self._finish()
        return chunk

    def _finish(self) -> None:
        if self._verified:
            return
        self._verified = True
        actual = self._hash.hexdigest()
        if self._seen == self.size and actual == self.expected:
            return
        what = (
            self.what
            if self._seen == self.size
            else f"{self.what} (size {self._seen} != {self.size})"
        )
        raise DigestMismatchError(
            what=what, expected=self.expected, actual=actual, quarantined=self._move_aside()
        )

    def _move_aside(self) -> str | None:
        if self.quarantine is None:
            return None
        try:
            return self.quarantine()
        except Exception:  # the damage is the error to report, not a failed move
            return None

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArtifactStore(ABC):
    """Where packages live. Pick an implementation with :func:`mlops_cli.stores.open_store`."""

    uri: str
    can_ingest: bool = False

    def __init__(self) -> None:
        self.stats = StoreStats()

    @abstractmethod
    def missing_blobs(self, digests: Iterable[str]) -> set[str]:
        """The digests of ``digests`` that the store does not hold."""

    @abstractmethod
    def put_blob(
        self,
        digest: str,
        path: Path,
        *,
        on_bytes: OnBytes | None = None,
        unchanged: Unchanged | None = None,
    ) -> int:
        """Store ``path`` under ``digest``, verified; return the bytes sent. See module promises."""

    def ingest(
        self, path: Path, *, on_bytes: OnBytes | None = None, unchanged: Unchanged | None = None
    ) -> tuple[str, int, int]:
        """Store ``path`` under the digest of its bytes; return (digest, size, bytes sent)."""
        raise NotImplementedError(f"{type(self).__name__} cannot ingest")

    @abstractmethod
    def open_blob(self, digest: str, *, quarantine_damaged: bool = True) -> VerifyingReader:
        """Stream a blob; the reader raises DigestMismatchError at the end if it is corrupt,
        after moving it to quarantine unless ``quarantine_damaged`` is false."""

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        """Every blob the store holds, as (digest, size), in no particular order."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its blobs")

    @abstractmethod
    def blob_size(self, digest: str) -> int:
        """Size of a stored blob; NotFoundError when absent."""

    @abstractmethod
    def _write_manifest(self, digest: str, data: bytes) -> None: ...

    @abstractmethod
    def _read_manifest(self, digest: str) -> bytes | None: ...

    def package_uri(self, digest: str) -> str:
        return PackageRef(self.uri, digest).uri

    def put_manifest(self, manifest: PackageManifest) -> str:
        """Publish a package whose blobs are all stored; return its URI. Idempotent."""
        missing = self.missing_blobs(manifest.blob_digests())
        if missing:
            raise NotFoundError(
                f"cannot publish package {manifest.name}: {len(missing)} of its blobs are not in {self.uri}"
            )
        digest = manifest.digest
        self._write_manifest(digest, manifest.to_bytes())
        self.stats.manifests_sent += 1
        return self.package_uri(digest)

    def get_manifest(self, digest: str) -> PackageManifest:
        """Read and verify a package manifest; PackageNotFoundError when absent."""
        data = self._read_manifest(check_digest(digest))
        if data is None:
            raise PackageNotFoundError(digest, self.uri)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatchError(
                what=f"manifest {digest[:12]}", expected=digest, actual=actual
            )
        return PackageManifest.from_bytes(data, source=self.package_uri(digest))

    def has_package(self, digest: str) -> bool:
        return self._read_manifest(check_digest(digest)) is not None

    def read_blob(self, digest: str, dest: Path, *, on_bytes: OnBytes | None = None) -> None:
        """Copy a blob to ``dest`` (atomically), verifying its digest."""
        import os
        import tempfile

        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as out, self.open_blob(digest) as reader:
                while chunk := reader.read(4 << 20):
                    out.write(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
