"""Writing one S3 object of unknown length as a stream: a parallel multipart upload.

:class:`S3ObjectWriter` is fed with :meth:`~S3ObjectWriter.write` (a tar.gz being produced, a
large file read in parts) and sends full parts on a small pool while the producer goes on, so
memory stays under ``max_inflight_parts * part_size``. The object appears only on
:meth:`~S3ObjectWriter.complete`; :meth:`~S3ObjectWriter.abort` (or an error) leaves nothing.
Each request carries a CRC32 checksum the server checks in transit. Failures are translated by
:func:`mlops_cli.aws.s3_location.translate_s3`, like every other S3 call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mlops_cli.aws.clients import client
from mlops_cli.aws.s3_location import S3Location, translate_s3

MiB = 1 << 20
DEFAULT_PART_SIZE = 8 * MiB  # also the size above which a file goes up in parts
DEFAULT_INFLIGHT_PARTS = 6
CHECKSUM = "CRC32"
MAX_PARTS = 10_000  # S3's limit

OnBytes = Callable[[int], None]


def part_entry(number: int, response: dict[str, Any]) -> dict[str, Any]:
    """What CompleteMultipartUpload needs to know of one uploaded part."""
    part = {"PartNumber": number, "ETag": response["ETag"]}
    if f"Checksum{CHECKSUM}" in response:
        part[f"Checksum{CHECKSUM}"] = response[f"Checksum{CHECKSUM}"]
    return part


class S3ObjectWriter:
    """Write the object at ``location`` (a full ``s3://bucket/key``) as a stream.

    ``on_bytes`` is told the size of every part once S3 has it (a progress bar's ``advance``)."""

    def __init__(
        self,
        location: S3Location,
        *,
        part_size: int | None = None,
        max_inflight_parts: int = DEFAULT_INFLIGHT_PARTS,
        on_bytes: OnBytes | None = None,
    ) -> None:
        self.location = location
        self.bucket = location.bucket
        self.key = location.key
        self.part_size = part_size or DEFAULT_PART_SIZE
        self.on_bytes = on_bytes
        self._client = client("s3", max_pool=max_inflight_parts + 16)
        self._slots = threading.BoundedSemaphore(max_inflight_parts)
        self._pool = ThreadPoolExecutor(
            max_workers=max_inflight_parts, thread_name_prefix="s3-writer"
        )
        self._buffer = bytearray()
        self._futures: list[Future[dict[str, Any]]] = []
        self._upload_id: str | None = None
        self.bytes_written = 0

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> S3ObjectWriter:
        return cls(S3Location.parse(uri, require_key=True), **options)

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(Bucket=self.bucket, Key=self.key, **kwargs)
        except Exception as exc:
            raise translate_s3(exc, what=what, location=self.location) from None

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.bytes_written += len(data)
        while len(self._buffer) >= self.part_size:
            part = bytes(self._buffer[: self.part_size])
            del self._buffer[: self.part_size]
            self._submit(part)
        return len(data)

    def _submit(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._call(
                "starting a multipart upload", "create_multipart_upload", ChecksumAlgorithm=CHECKSUM
            )["UploadId"]
        for future in self._futures:
            if future.done() and future.exception() is not None:
                future.result()  # raise the first failure now
        if len(self._futures) >= MAX_PARTS:
            from mlops_cli.errors import MlopsError

            raise MlopsError(
                f"{self.location.uri} needs more than {MAX_PARTS} parts of {self.part_size} bytes",
                hint="raise the part size",
            )
        self._slots.acquire()
        number = len(self._futures) + 1
        try:
            self._futures.append(self._pool.submit(self._part, number, body))
        except BaseException:
            self._slots.release()
            raise

    def _part(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            response = self._call(
                "uploading a part",
                "upload_part",
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=CHECKSUM,
            )
        finally:
            self._slots.release()
        if self.on_bytes is not None:
            self.on_bytes(len(body))
        return part_entry(number, response)

    def complete(self) -> None:
        """Send what is buffered and make the object visible."""
        if self._upload_id is None:  # small enough for one request
            body = bytes(self._buffer)
            self._call("uploading", "put_object", Body=body, ChecksumAlgorithm=CHECKSUM)
            if self.on_bytes is not None:
                self.on_bytes(len(body))
        else:
            if self._buffer:
                self._submit(bytes(self._buffer))
            parts = [future.result() for future in self._futures]
            self._call(
                "completing a multipart upload",
                "complete_multipart_upload",
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        self._buffer.clear()
        self._pool.shutdown()

    def abort(self) -> None:
        """Drop everything sent so far; the object never appears."""
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        if self._upload_id is not None:
            with contextlib.suppress(Exception):  # best effort: the caller needs the original error
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
                )


__all__ = ["DEFAULT_PART_SIZE", "MiB", "OnBytes", "S3ObjectWriter", "part_entry"]
