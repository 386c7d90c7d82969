"""The SageMaker ``model.tar.gz`` of a package, streamed.

What it holds is the layout the container of the package's runtime loads as it is
(:mod:`mlops_cli.render.sagemaker_layout`): a Triton model repository entry, or a
multi-model-server model folder. ``mlops package render --format sagemaker`` and a deploy to a
multi-model endpoint write the same bytes for the same package and device.

Blobs are read from the store (verified), written as a tar stream, compressed with gzip at a fast
level (ISA-L's igzip when ``isal`` is installed, zlib otherwise) and handed straight to a sink: a
local file or a parallel S3 multipart upload. No temporary copy of the archive is ever made, so
memory stays bounded and compression overlaps the upload.

The archive is reproducible: entries sorted by path, fixed mtime, owner 0/0 with no names, modes
0644 or 0755, and a gzip header with no name and mtime 0. Every blob is verified against its
digest as it is read; S3 checksums protect each part in transit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_cli.errors import UsageError
from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.render.common import EXEC_MODE, FILE_MODE, FIXED_MTIME, package_spec
from mlops_cli.render.sagemaker_layout import TarEntry, tarball_layout
from mlops_cli.stores.base import ArtifactStore

DEFAULT_LEVEL = 1
COPY_CHUNK = 4 << 20
PREFETCH_CHUNKS = 4  # read ahead of the compressor: bounded memory
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
    """Compresses what it is given and passes it on, counting bytes in and out."""

    def __init__(self, sink: Sink, level: int) -> None:
        self.sink = sink
        self.compressor = _compressor(level)
        self.bytes_out = 0
        self.bytes_in = 0

    def _emit(self, data: bytes) -> None:
        if data:
            self.bytes_out += len(data)
            self.sink.write(data)

    def write(self, data: bytes | memoryview) -> None:
        self.bytes_in += len(data)
        self._emit(self.compressor.compress(data))

    def finish(self) -> None:
        self._emit(self.compressor.flush())


@dataclass(frozen=True)
class TarballResult:
    uri: str
    bytes: int  # compressed size
    uncompressed_bytes: int


def _header(path: str, size: int, executable: bool) -> bytes:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = EXEC_MODE if executable else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tarball(
    store: ArtifactStore,
    manifest: PackageManifest,
    sink: Sink,
    *,
    device: str | None = None,
    level: int = DEFAULT_LEVEL,
    reporter: Reporter = SILENT,
) -> tuple[int, int]:
    """Stream the package's SageMaker layout as tar+gzip into ``sink``; return (compressed,
    uncompressed) bytes. ``device`` (``gpu``/``cpu``): see
    :func:`~mlops_cli.render.sagemaker_layout.tarball_layout`.

    The tar stream is written here (headers from :class:`tarfile.TarInfo`, data in large
    chunks, 512-byte padding, two zero blocks, padding to a 10 KiB record, as tar does) so that
    file data goes from the store to the compressor without intermediate copies.
    """
    entries = tarball_layout(store, manifest, package_spec(store, manifest), device=device)
    gz = _GzipWriter(sink, level)
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=PREFETCH_CHUNKS)
    stop = threading.Event()

    def produce() -> None:
        # Reading and verifying the blobs overlaps compression (both release the GIL).
        try:
            for entry in entries:
                chunks.put(_header(entry.path, entry.size, entry.executable))
                _produce_data(store, entry, chunks, stop)
                if stop.is_set():
                    return
                if entry.size % tarfile.BLOCKSIZE:
                    chunks.put(bytes(tarfile.BLOCKSIZE - entry.size % tarfile.BLOCKSIZE))
            chunks.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            chunks.put(exc)

    reader_thread = threading.Thread(target=produce, name="tarball-reader", daemon=True)
    total = sum(entry.size for entry in entries)
    with running(reporter, f"archiving {manifest.name}", total=total, unit="bytes") as task:
        reader_thread.start()
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                gz.write(item)
                task.advance(len(item))
        finally:
            stop.set()
            while reader_thread.is_alive():  # unblock a producer waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    chunks.get_nowait()
                reader_thread.join(timeout=0.05)
        gz.write(bytes(2 * tarfile.BLOCKSIZE))
        if gz.bytes_in % tarfile.RECORDSIZE:
            gz.write(bytes(tarfile.RECORDSIZE - gz.bytes_in % tarfile.RECORDSIZE))
        gz.finish()
    return gz.bytes_out, gz.bytes_in


def _produce_data(
    store: ArtifactStore,
    entry: TarEntry,
    chunks: queue.Queue[bytes | BaseException | None],
    stop: threading.Event,
) -> None:
    if entry.data is not None:
        chunks.put(entry.data)
        return
    assert entry.sha256 is not None
    with store.open_blob(entry.sha256) as reader:
        while not stop.is_set() and (chunk := reader.read(COPY_CHUNK)):
            chunks.put(chunk)


def publish_tarball(
    store: ArtifactStore,
    manifest: PackageManifest,
    destination: str,
    *,
    device: str | None = None,
    level: int = DEFAULT_LEVEL,
    reporter: Reporter = SILENT,
    part_size: int | None = None,
) -> TarballResult:
    """Write ``model.tar.gz`` to ``s3://bucket/key`` or a local path; nothing partial is left.

    S3: one multipart upload fed as the archive is produced, completed only at the end.
    Local: a temporary file beside the target, renamed into place.
    A package whose mlops.yaml is invalid (an entrypoint outside the package), or that its
    runtime's container cannot load as laid out, is refused before anything is written.
    """
    tarball_layout(store, manifest, package_spec(store, manifest), device=device)
    if destination.startswith("s3://"):
        from mlops_cli.aws.s3_stream import S3ObjectWriter

        writer = S3ObjectWriter.from_uri(destination, part_size=part_size)  # parses, validates
        try:
            size, raw = write_tarball(
                store, manifest, writer, device=device, level=level, reporter=reporter
            )
            writer.complete()
        except BaseException:
            writer.abort()
            raise
        return TarballResult(uri=destination, bytes=size, uncompressed_bytes=raw)
    if "://" in destination and not destination.startswith("file://"):
        raise UsageError(
            f"unsupported destination {destination!r}", hint="use s3://bucket/key or a path"
        )
    target = Path(destination.removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            size, raw = write_tarball(
                store, manifest, handle, device=device, level=level, reporter=reporter
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return TarballResult(uri=str(target), bytes=size, uncompressed_bytes=raw)
