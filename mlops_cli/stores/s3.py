"""``s3://bucket/prefix`` artifact store.

Large blobs go up as parallel multipart uploads. One reader per file reads it in order, hashes
exactly the bytes it hands out, and submits parts to a pool shared by all files, so memory stays
under ``max_inflight_parts * part_size`` however many files upload at once. The multipart upload
is completed only when the bytes hash to the expected digest; otherwise it is aborted and nothing
becomes visible. Each request also carries an S3 checksum (CRC32) the server checks in transit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlops_cli import aws
from mlops_cli.aws.s3_location import S3Location, translate_s3
from mlops_cli.aws.s3_stream import (
    CHECKSUM,
    DEFAULT_INFLIGHT_PARTS,
    DEFAULT_PART_SIZE,
    MAX_PARTS,
    MiB,
    S3ObjectWriter,
)
from mlops_cli.aws.s3_stream import part_entry as _part_entry
from mlops_cli.errors import MlopsError, NotFoundError
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


class S3Store(ArtifactStore):
    """Thread-safe. ``part_size`` is also the multipart threshold (S3's minimum part is 5 MiB)."""

    single_copy_limit = 5 * 1024 * MiB  # S3's limit for CopyObject
    copy_part_size = 512 * MiB

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        max_inflight_parts: int = DEFAULT_INFLIGHT_PARTS,
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = S3Location(bucket, self.prefix)
        self.uri = self.location.uri
        self.part_size = part_size
        self._slots = threading.BoundedSemaphore(max_inflight_parts)
        self._parts = ThreadPoolExecutor(
            max_workers=max_inflight_parts, thread_name_prefix="s3-part"
        )
        self._stats_lock = threading.Lock()
        self._client = aws.client("s3", max_pool=max_inflight_parts + 16)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> S3Store:
        location = S3Location.parse(uri)
        return cls(location.bucket, location.key, **options)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise translate_s3(exc, what=what, location=self.location) from None

    # -- blobs -------------------------------------------------------------------------------

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            if code in ("NoSuchBucket", "403", "AccessDenied"):
                raise self._bucket_problem(exc) from None
            raise aws.translate(exc, what=f"checking {key} ({self.uri})") from None
        except Exception as exc:
            raise aws.translate(exc, what=f"checking {key} ({self.uri})") from None

    def _bucket_problem(self, original: Exception) -> Exception:
        """Why a HEAD was refused: a missing bucket, or credentials the server refuses."""
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in (
                "404",
                "NoSuchBucket",
                "NotFound",
            ):
                return NotFoundError(
                    f"bucket {self.bucket} does not exist ({self.uri})",
                    hint=f"create it first: aws s3 mb s3://{self.bucket}",
                )
            if str(exc.response.get("Error", {}).get("Code", "")) in ("403", "AccessDenied"):
                return aws.CredentialsError(
                    f"AWS refused the credentials for {self.uri} (403 Forbidden)",
                    hint="check the profile or keys, and that they may read and write this bucket",
                )
            return aws.translate(exc, what=f"checking bucket {self.bucket}")
        except Exception as exc:
            return aws.translate(exc, what=f"checking bucket {self.bucket}")
        return aws.translate(original, what=f"reading {self.uri}")

    def missing_blobs(self, digests: Iterable[str]) -> set[str]:
        wanted = [check_digest(d) for d in dict.fromkeys(digests)]
        if not wanted:
            return set()
        with ThreadPoolExecutor(max_workers=min(16, len(wanted))) as pool:
            present = list(pool.map(lambda d: self._exists(blob_key(d)), wanted))
        return {d for d, here in zip(wanted, present, strict=True) if not here}

    def _count(self, sent: int) -> None:
        with self._stats_lock:
            self.stats.blob_bytes_sent += sent
            self.stats.blobs_sent += 1

    def put_blob(
        self,
        digest: str,
        path: Path,
        *,
        on_bytes: OnBytes | None = None,
        unchanged: Unchanged | None = None,
    ) -> int:
        key = self._key(blob_key(check_digest(digest)))
        if self._exists(blob_key(digest)):  # idempotent: a stored blob is never sent again
            return 0
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size < self.part_size:  # small: one request
                first = handle.read(self.part_size)
                if hashlib.sha256(first).hexdigest() != digest:
                    raise FileChangedError(str(path))
                self._call(
                    "uploading a blob",
                    "put_object",
                    Key=key,
                    Body=first,
                    ChecksumAlgorithm=CHECKSUM,
                )
                if on_bytes is not None:
                    on_bytes(len(first))
                self._count(len(first))
                return len(first)
            return self._put_multipart(key, digest, path, handle, on_bytes, unchanged)

    def _abort_stale(self, key: str) -> None:
        """Abort multipart uploads of ``key`` left by an upload that was killed."""
        listing = self._call("listing multipart uploads", "list_multipart_uploads", Prefix=key)
        for upload in listing.get("Uploads", []):
            if upload.get("Key") == key:
                self._call(
                    "aborting a stale upload",
                    "abort_multipart_upload",
                    Key=key,
                    UploadId=upload["UploadId"],
                )

    def _put_multipart(
        self,
        key: str,
        digest: str,
        path: Path,
        handle: Any,
        on_bytes: OnBytes | None,
        unchanged: Unchanged | None,
    ) -> int:
        self._abort_stale(key)
        upload_id = self._call(
            "starting a multipart upload",
            "create_multipart_upload",
            Key=key,
            ChecksumAlgorithm=CHECKSUM,
        )["UploadId"]
        hasher = hashlib.sha256() if unchanged is None else None
        futures: list[Future[dict[str, Any]]] = []
        sent = 0
        try:
            # A slot is taken before a part is read: memory stays within the in-flight limit.
            for number in range(1, MAX_PARTS + 1):
                self._slots.acquire()
                try:
                    chunk = handle.read(self.part_size)
                    if not chunk:
                        self._slots.release()
                        break
                    if hasher is not None:
                        hasher.update(chunk)
                    futures.append(
                        self._parts.submit(
                            self._upload_part, key, upload_id, number, chunk, on_bytes
                        )
                    )
                except BaseException:
                    self._slots.release()
                    raise
                sent += len(chunk)
                del chunk
                if any(f.done() and f.exception() for f in futures[-4:]):
                    break
            else:
                raise MlopsError(
                    f"{path} needs more than {MAX_PARTS} parts of {self.part_size} bytes",
                    hint="raise the part size",
                )
            parts = [future.result() for future in futures]
            verified = (
                hasher.hexdigest() == digest
                if hasher is not None
                else unchanged is not None and unchanged()
            )
            if not verified:
                raise FileChangedError(str(path))
            self._call(
                "completing a multipart upload",
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            for future in futures:
                future.cancel()
            # Best effort: the original error matters more; a stale upload is aborted next time.
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        self._count(sent)
        return sent

    def _upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, on_bytes: OnBytes | None
    ) -> dict[str, Any]:
        try:
            response = self._call(
                "uploading a part",
                "upload_part",
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=CHECKSUM,
            )
        finally:
            self._slots.release()
        if on_bytes is not None:
            on_bytes(len(body))
        return _part_entry(number, response)

    def open_blob(self, digest: str, *, quarantine_damaged: bool = True) -> VerifyingReader:
        response = self._call(
            "reading a blob", "get_object", Key=self._key(blob_key(check_digest(digest)))
        )
        etag = str(response.get("ETag", ""))
        size = int(response["ContentLength"])
        return VerifyingReader(
            response["Body"],
            digest=digest,
            size=size,
            what=f"blob {digest[:12]}",
            quarantine=(
                (lambda: self._quarantine(digest, etag, size)) if quarantine_damaged else None
            ),
        )

    def _quarantine(self, digest: str, etag: str, size: int) -> str | None:
        """Copy the blob that was read (the object with ``etag``) to quarantine/, then delete it.

        The copy is conditional on the ETag, so an object replaced since the read is left alone.
        (A replacement between the copy and the delete would be deleted; the next upload of a
        package holding it sends it again.)"""
        from botocore.exceptions import ClientError

        source = self._key(blob_key(digest))
        target = f"quarantine/sha256/{digest}.{time.time_ns()}"
        try:
            self._copy_if_match(source, self._key(target), etag=etag, size=size)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("412", "PreconditionFailed"):
                return None
            raise aws.translate(exc, what=f"moving a damaged blob aside ({self.uri})") from None
        self._call("removing a damaged blob", "delete_object", Key=source)
        return target

    def _copy_if_match(self, source: str, target: str, *, etag: str, size: int) -> None:
        """Server-side copy of ``source`` while it still has ``etag``; a multipart copy above
        S3's single-copy limit. Raises botocore's ClientError."""
        copy_source = {"Bucket": self.bucket, "Key": source}
        if size <= self.single_copy_limit:
            self._client.copy_object(
                Bucket=self.bucket, Key=target, CopySource=copy_source, CopySourceIfMatch=etag
            )
            return
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=target)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, self.copy_part_size), start=1):
                end = min(start + self.copy_part_size, size) - 1
                response = self._client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={start}-{end}",
                    CopySourceIfMatch=etag,
                )
                parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=upload_id
                )
            raise

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        folder = self._key("blobs/sha256/")
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(folder) :]
                    if is_digest(name):
                        yield name, int(item["Size"])
        except Exception as exc:
            raise aws.translate(exc, what=f"listing blobs ({self.uri})") from None

    def blob_size(self, digest: str) -> int:
        response = self._call(
            "reading a blob's size", "head_object", Key=self._key(blob_key(check_digest(digest)))
        )
        return int(response["ContentLength"])

    # -- manifests ---------------------------------------------------------------------------

    def _write_manifest(self, digest: str, data: bytes) -> None:
        self._call(
            "publishing a package",
            "put_object",
            Key=self._key(manifest_key(digest)),
            Body=data,
            ContentType="application/json",
            ChecksumAlgorithm=CHECKSUM,
        )

    def _read_manifest(self, digest: str) -> bytes | None:
        key = manifest_key(digest)
        if not self._exists(key):
            return None
        body = self._call("reading a package manifest", "get_object", Key=self._key(key))["Body"]
        data: bytes = body.read()
        return data


__all__ = ["DEFAULT_PART_SIZE", "S3ObjectWriter", "S3Store"]
