"""Extract a ``model.tar.gz`` without letting it write outside its folder, or more than it may.

Two streaming passes over the archive (each reads it once, never seeks):

1. **Check**, writing nothing: every member header is read and refused when its name is absolute
   or climbs out (``..``), a link points outside the folder, it is a device or a FIFO, the members
   are more than :attr:`ArchiveLimits.max_members`, or the sizes they declare add up to more than
   :attr:`ArchiveLimits.max_bytes` (the disk the endpoint has left): each check fires on the
   header that breaks it. The data is inflated (and dropped) meanwhile, and refused as soon as it
   outgrows the compressed bytes read by more than :attr:`ArchiveLimits.max_ratio`, so a bomb
   (3 GiB of zeros in 3 MB) is refused after its first few MB, in milliseconds.
2. **Extract** (with the standard ``data`` filter as a second guard) into a temporary sibling
   folder that is renamed into place. A refused or broken archive leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlops_cli.errors import MlopsError

COPY_CHUNK = 1 << 20
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


class UnsafeArchiveError(MlopsError, ValueError):
    """An archive member would land outside the extraction folder, or is not a plain file."""


class ArchiveTooLargeError(UnsafeArchiveError):
    """The archive would write more than its limits allow (a decompression bomb, or too big)."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may write: its declared total (``max_bytes``), its member count, and how
    much its data may outgrow the compressed bytes read (checked once ``ratio_floor`` bytes are
    inflated, so that small, very compressible files pass)."""

    max_bytes: int
    max_members: int = 10_000
    max_ratio: float = 200.0
    ratio_floor: int = 16 << 20


def _inside(path: str) -> bool:
    normal = posixpath.normpath(path)
    return not (normal.startswith("/") or normal == ".." or normal.startswith("../"))


def check_member(member: tarfile.TarInfo, *, what: str) -> None:
    """Refuse a member that would leave the folder, or that is not a file, folder or inner link."""
    name = member.name
    if name.startswith("/") or not _inside(name) or ".." in name.split("/"):
        raise UnsafeArchiveError(f"{what}: member {name!r} leaves the archive's folder")
    if member.issym() or member.islnk():
        base = posixpath.dirname(name) if member.issym() else ""
        if member.linkname.startswith("/") or not _inside(posixpath.join(base, member.linkname)):
            raise UnsafeArchiveError(
                f"{what}: link {name!r} -> {member.linkname!r} points outside the archive"
            )
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{what}: member {name!r} is a device or FIFO")


class _Budget:
    """The running totals of pass 1, checked against the limits as they grow."""

    def __init__(self, limits: ArchiveLimits, raw: IO[bytes], what: str) -> None:
        self.limits, self.raw, self.what = limits, raw, what
        self.members = 0
        self.declared = 0
        self.inflated = 0

    def member(self, member: tarfile.TarInfo) -> None:
        limits, what = self.limits, self.what
        self.members += 1
        if self.members > limits.max_members:
            raise ArchiveTooLargeError(
                f"{what}: more than {limits.max_members} members; the archive was refused "
                "before anything was written"
            )
        self.declared += member.size if member.isfile() else 0
        if self.declared > limits.max_bytes:
            raise ArchiveTooLargeError(
                f"{what}: its members declare more than {limits.max_bytes} bytes "
                f"({member.name!r} reaches {self.declared}), more than the endpoint's disk "
                "allows; the archive was refused before anything was written"
            )

    def data(self, size: int) -> None:
        self.inflated += size
        if self.inflated <= self.limits.ratio_floor:
            return
        compressed = max(1, self.raw.tell())
        if self.inflated / compressed > self.limits.max_ratio:
            raise ArchiveTooLargeError(
                f"{self.what}: {self.inflated} bytes inflated from {compressed} compressed bytes, "
                f"a ratio above {self.limits.max_ratio:g}: a decompression bomb; the archive "
                "was refused before anything was written"
            )


def _gzip_or_plain(raw: IO[bytes]) -> Any:
    magic = raw.read(2)
    raw.seek(0)
    if magic != b"\x1f\x8b":
        return contextlib.nullcontext(raw)
    try:
        from isal import igzip

        return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - isal is a dependency
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")


@contextlib.contextmanager
def _archive(archive_path: Path) -> Iterator[tuple[tarfile.TarFile, IO[bytes]]]:
    """The archive opened for one streaming pass, and its raw (compressed) file."""
    with (
        open(archive_path, "rb") as raw,
        _gzip_or_plain(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as archive,
    ):
        yield archive, raw


def check_archive(archive_path: Path, limits: ArchiveLimits, *, what: str) -> int:
    """Pass 1: read every header and inflate every file, writing nothing; the total size."""
    try:
        with _archive(archive_path) as (archive, raw):
            budget = _Budget(limits, raw, what)
            for member in archive:
                check_member(member, what=what)
                budget.member(member)
                reader = archive.extractfile(member) if member.isfile() else None
                while reader is not None and (chunk := reader.read(COPY_CHUNK)):
                    budget.data(len(chunk))
    except _READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{what}: not a readable tar.gz archive ({exc})") from None
    return budget.declared


def extract_tarball(
    archive_path: Path, destination: Path, *, what: str, limits: ArchiveLimits | None = None
) -> int:
    """Check ``archive_path`` (tar, optionally gzip) within ``limits`` (default: 4 GiB), then
    extract it into ``destination`` (which must not exist); return the extracted bytes. Raises
    :class:`UnsafeArchiveError` (:class:`ArchiveTooLargeError` beyond the limits) for a bad member
    or a corrupt archive, leaving nothing."""
    total = check_archive(archive_path, limits or ArchiveLimits(max_bytes=4 << 30), what=what)
    extract_checked(archive_path, destination, what=what)
    return total


def extract_checked(archive_path: Path, destination: Path, *, what: str) -> None:
    """Pass 2: extract an archive :func:`check_archive` accepted into ``destination`` (which must
    not exist), through a staging folder renamed into place; nothing is left on failure."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}."))
    try:
        try:
            with _archive(archive_path) as (archive, _):
                for member in archive:  # the file pass 1 checked; checked again all the same
                    check_member(member, what=what)
                    archive.extract(member, staging, filter="data")
        except _READ_ERRORS as exc:
            raise UnsafeArchiveError(f"{what}: not a readable tar.gz archive ({exc})") from None
        staging.replace(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = [
    "ArchiveLimits",
    "ArchiveTooLargeError",
    "UnsafeArchiveError",
    "check_archive",
    "check_member",
    "extract_checked",
    "extract_tarball",
]
