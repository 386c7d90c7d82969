"""The SageMaker ``model.tar.gz`` of a package, streamed.

Blobs are read from the store (verified), written as a tar stream, compressed with gzip at a fast
level (ISA-L's igzip when ``isal`` is installed, zlib otherwise) and handed straight to a sink: a
local file or a parallel S3 multipart upload. No temporary copy of the archive is ever made, so
memory stays bounded and compression overlaps the upload.

The archive is reproducible: entries sorted by path, fixed mtime, owner 0/0 with no names, modes
0644 or 0755, and a gzip header with no name and mtime 0.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_cli.errors import UsageError
from mlops_cli.package import PackageManifest
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.render.common import EXEC_MODE, FILE_MODE, FIXED_MTIME
from mlops_cli.stores.base import ArtifactStore

DEFAULT_LEVEL = 1
_GZIP_WBITS = 31  # zlib: gzip wrapper, header mtime 0 and no file name


class Sink(Protocol):
    def write(self, data: bytes) -> Any: ...


def _compressor(level: int) -> Any:
    try:
        from isal import isal_zlib

        return isal_zlib.compressobj(
            min(level, isal_zlib.ISAL_BEST_COMPRESSION), isal_zlib.DEFLATED, _GZIP_WBITS
        )
    except ImportError:
        import zlib

        return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)


class _GzipWriter:
    """File-like: compresses what tarfile writes and passes it on, counting and hashing it."""

    def __init__(self, sink: Sink, level: int) -> None:
        self.sink = sink
        self.compressor = _compressor(level)
        self.hasher = hashlib.sha256()
        self.bytes_out = 0
        self.bytes_in = 0

    def _emit(self, data: bytes) -> None:
        if data:
            self.hasher.update(data)
            self.bytes_out += len(data)
            self.sink.write(data)

    def write(self, data: bytes) -> int:
        self.bytes_in += len(data)
        self._emit(self.compressor.compress(data))
        return len(data)

    def finish(self) -> None:
        self._emit(self.compressor.flush())


@dataclass(frozen=True)
class TarballResult:
    uri: str
    bytes: int  # compressed size
    sha256: str  # of the compressed archive
    uncompressed_bytes: int


def write_tarball(
    store: ArtifactStore,
    manifest: PackageManifest,
    sink: Sink,
    *,
    level: int = DEFAULT_LEVEL,
    reporter: Reporter = SILENT,
) -> tuple[int, str, int]:
    """Stream the package as tar+gzip into ``sink``; return (bytes, sha256, uncompressed bytes)."""
    gz = _GzipWriter(sink, level)
    entries = sorted(manifest.files, key=lambda entry: entry.path)
    with running(
        reporter, f"archiving {manifest.name}", total=manifest.total_bytes, unit="bytes"
    ) as task:
        # A large bufsize makes tarfile hand big blocks to the compressor.
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20) as tar:  # type: ignore[call-overload]
            for entry in entries:
                info = tarfile.TarInfo(entry.path)
                info.size = entry.size
                info.mtime = FIXED_MTIME
                info.mode = EXEC_MODE if entry.executable else FILE_MODE
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with store.open_blob(entry.sha256) as reader:
                    tar.addfile(info, _Counting(reader, task.advance))
        gz.finish()
    return gz.bytes_out, gz.hasher.hexdigest(), gz.bytes_in


class _Counting:
    def __init__(self, raw: Any, on_bytes: Any) -> None:
        self.raw = raw
        self.on_bytes = on_bytes

    def read(self, amount: int = -1) -> bytes:
        data: bytes = self.raw.read(amount)
        self.on_bytes(len(data))
        return data


def publish_tarball(
    store: ArtifactStore,
    manifest: PackageManifest,
    destination: str,
    *,
    level: int = DEFAULT_LEVEL,
    reporter: Reporter = SILENT,
    part_size: int | None = None,
) -> TarballResult:
    """Write ``model.tar.gz`` to ``s3://bucket/key`` or a local path; nothing partial is left.

    S3: one multipart upload fed as the archive is produced, completed only at the end.
    Local: a temporary file beside the target, renamed into place.
    """
    if destination.startswith("s3://"):
        from mlops_cli.stores.s3 import S3ObjectWriter

        writer = S3ObjectWriter.from_uri(destination, part_size=part_size)
        try:
            size, digest, raw = write_tarball(
                store, manifest, writer, level=level, reporter=reporter
            )
            writer.complete()
        except BaseException:
            writer.abort()
            raise
        return TarballResult(uri=destination, bytes=size, sha256=digest, uncompressed_bytes=raw)
    if "://" in destination and not destination.startswith("file://"):
        raise UsageError(
            f"unsupported destination {destination!r}", hint="use s3://bucket/key or a path"
        )
    target = Path(destination.removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            size, digest, raw = write_tarball(
                store, manifest, handle, level=level, reporter=reporter
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return TarballResult(uri=str(target), bytes=size, sha256=digest, uncompressed_bytes=raw)
