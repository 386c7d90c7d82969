"""``s3://bucket/prefix`` in one place: the URI type and the operations mlops does on a prefix.

:class:`S3Location` (from :mod:`mlops_cli.aws.s3_location`) is the one parser of ``s3://`` URIs.
:class:`S3Prefix` is the objects under one prefix: head, put (bytes,
a file, a stream; multipart above the part size, with a progress callback), get, delete (one
object or a folder, idempotent) and list. Every failure is translated once, by
:func:`translate_s3`, into the mlops errors with the bucket's own hints (create the bucket;
check the keys may access it), so no caller handles a botocore exception.

The artifact store (:mod:`mlops_cli.stores.s3`) keeps its own verified multipart upload and
uses this module's client factory, parser and translation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.aws.clients import client
from mlops_cli.aws.errors import CredentialsError, error_code, is_botocore_error
from mlops_cli.aws.s3_location import DENIED_CODES, S3Location, translate_s3
from mlops_cli.aws.s3_stream import DEFAULT_PART_SIZE, OnBytes, S3ObjectWriter
from mlops_cli.errors import MlopsError

_MISSING_KEY_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class S3Object:
    name: str  # the key relative to the prefix
    size: int
    etag: str = ""


class S3Prefix:
    """The objects under one prefix. Names are keys relative to it; thread-safe."""

    def __init__(self, location: S3Location | str, *, max_pool: int | None = None) -> None:
        parsed = S3Location.parse(location) if isinstance(location, str) else location
        self.location = parsed.as_prefix()
        self.bucket = self.location.bucket
        self._max_pool = max_pool

    @property
    def uri(self) -> str:
        return self.location.uri

    def key(self, name: str) -> str:
        return self.location.child(name).key

    def uri_of(self, name: str) -> str:
        return self.location.child(name).uri

    def _client(self) -> Any:
        return client("s3", max_pool=self._max_pool)

    def call(self, what: str, method: str, name: str | None = None, **params: Any) -> Any:
        """``method`` of the S3 client on the bucket (and the object ``name``), translated."""
        where = self.location if name is None else self.location.child(name)
        if name is not None:
            params["Key"] = where.key
        try:
            return getattr(self._client(), method)(Bucket=self.bucket, **params)
        except Exception as exc:
            raise translate_s3(exc, what=what, location=where) from None

    def head(self, name: str) -> S3Object | None:
        """The object ``name``, or None when there is none (a missing bucket raises)."""
        try:
            found = self._client().head_object(Bucket=self.bucket, Key=self.key(name))
        except Exception as exc:
            if error_code(exc) in _MISSING_KEY_CODES:
                return None
            raise translate_s3(exc, what="checking", location=self.location.child(name)) from None
        return S3Object(name, int(found.get("ContentLength", 0)), str(found.get("ETag", "")))

    def put_bytes(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.call("uploading", "put_object", name, Body=data, **extra)

    def put_file(self, name: str, path: Path, *, on_bytes: OnBytes | None = None) -> int:
        """Upload ``path`` as ``name``: one request, or a parallel multipart upload above the
        part size. Nothing appears unless all of it arrived. Returns the bytes sent."""
        size = path.stat().st_size
        if size <= DEFAULT_PART_SIZE:
            with open(path, "rb") as body:
                self.call("uploading", "put_object", name, Body=body)
            if on_bytes is not None:
                on_bytes(size)
            return size
        writer = self.writer(name, on_bytes=on_bytes)
        try:
            with open(path, "rb") as source:
                while chunk := source.read(writer.part_size):
                    writer.write(chunk)
            writer.complete()
        except BaseException:
            writer.abort()
            raise
        return writer.bytes_written

    def writer(
        self, name: str, *, part_size: int | None = None, on_bytes: OnBytes | None = None
    ) -> S3ObjectWriter:
        """A stream into the object ``name`` (see :class:`S3ObjectWriter`)."""
        return S3ObjectWriter(self.location.child(name), part_size=part_size, on_bytes=on_bytes)

    def download(self, name: str, into: Path, *, chunk_size: int = 1 << 20) -> int:
        """Copy the object ``name`` into the file ``into``; returns its size."""
        response = self.call("downloading", "get_object", name)
        written = 0
        try:
            with open(into, "wb") as handle:
                for chunk in response["Body"].iter_chunks(chunk_size):
                    handle.write(chunk)
                    written += len(chunk)
        except Exception as exc:
            if not is_botocore_error(exc):  # the local file could not be written: the caller's
                raise
            where = self.location.child(name)  # the connection broke mid-body
            raise translate_s3(exc, what="downloading", location=where) from None
        return written

    def get(self, name: str) -> bytes:
        """The whole (small) object ``name``."""
        response = self.call("reading", "get_object", name)
        try:
            data: bytes = response["Body"].read()
        except Exception as exc:
            raise translate_s3(exc, what="reading", location=self.location.child(name)) from None
        return data

    def delete(self, name: str) -> None:
        """Delete the object ``name``; one that is not there is not an error."""
        try:
            self._client().delete_object(Bucket=self.bucket, Key=self.key(name))
        except Exception as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise translate_s3(
                    exc, what="deleting", location=self.location.child(name)
                ) from None

    def list_objects(self, folder: str = "") -> Iterator[S3Object]:
        """Every object under ``folder`` (relative to the prefix), at any depth."""
        base = self.location.child(folder) if folder else self.location
        try:
            pages = (
                self._client()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.bucket, Prefix=base.key)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    yield S3Object(
                        key[len(self.location.key) :], int(item["Size"]), str(item.get("ETag", ""))
                    )
        except Exception as exc:
            raise translate_s3(exc, what="listing", location=base) from None

    def delete_folder(self, folder: str) -> int:
        """Delete every object under ``folder``; returns how many. Idempotent."""
        base = self.location.child(folder.rstrip("/") + "/")
        removed = 0
        batch: list[dict[str, str]] = []
        for item in self.list_objects(folder.rstrip("/") + "/"):
            batch.append({"Key": self.key(item.name)})
            if len(batch) == 1000:  # DeleteObjects' limit
                removed += self._delete_batch(batch, base)
                batch = []
        if batch:
            removed += self._delete_batch(batch, base)
        return removed

    def _delete_batch(self, keys: list[dict[str, str]], base: S3Location) -> int:
        response = self.call("deleting", "delete_objects", Delete={"Objects": keys, "Quiet": True})
        refused = response.get("Errors") or []
        if refused:  # per-key failures come back in a 200 answer, not as an exception
            first = refused[0]
            code = str(first.get("Code", ""))
            message = f"{first.get('Key')}: {code}: {first.get('Message', '')}"
            if code in DENIED_CODES:
                raise CredentialsError(
                    f"deleting {base.uri}: AWS refused to delete {len(refused)} object(s) "
                    f"({message})",
                    hint="check that the keys may delete objects under this prefix",
                )
            raise MlopsError(
                f"deleting {base.uri}: {len(refused)} object(s) not deleted ({message})"
            )
        return len(keys)


__all__ = ["S3Object", "S3Prefix"]
