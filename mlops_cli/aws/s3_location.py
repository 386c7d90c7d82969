"""``s3://bucket/key`` parsed once, and a failed S3 call on it translated once.

:class:`S3Location` is the one parser of ``s3://`` URIs (bucket names checked by S3's rules, one
line saying what is wrong); :func:`translate_s3` turns a botocore failure on a location into the
mlops errors with the bucket's own hints (create the bucket; check the keys may access it). The
operations on a prefix (:mod:`mlops_cli.aws.s3`) and the streaming writer
(:mod:`mlops_cli.aws.s3_stream`) both build on this module, which imports neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlops_cli.aws.errors import CredentialsError, error_code, translate
from mlops_cli.errors import MlopsError, NotFoundError, UsageError

# S3's bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, starting and
# ending with a letter or digit (the same pattern the endpoint file's schema holds).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
DENIED_CODES = frozenset({"403", "AccessDenied", "Forbidden"})


@dataclass(frozen=True)
class S3Location:
    """A parsed ``s3://bucket/key``: ``key`` is an object key or a prefix (``""``: the bucket)."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: str, *, require_key: bool = False) -> S3Location:
        """Parse ``uri``; a :class:`~mlops_cli.errors.UsageError` names what is wrong.

        ``require_key``: the URI must name an object (``s3://bucket/key``), not just a bucket."""
        expected = "s3://bucket/key" if require_key else "s3://bucket/prefix"
        if not uri.startswith("s3://"):
            raise UsageError(
                f"{uri!r} is not an S3 URI (it must start with s3://)", hint=f"use {expected}"
            )
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise UsageError(f"S3 URI {uri!r} names no bucket", hint=f"use {expected}")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise UsageError(
                f"S3 URI {uri!r}: {bucket!r} is not a valid bucket name",
                hint="bucket names are 3-63 lowercase letters, digits, dots and hyphens",
            )
        if any(ch in key for ch in "\r\n\x00") or "//" in key or key.startswith("/"):
            raise UsageError(f"S3 URI {uri!r} has an invalid key", hint=f"use {expected}")
        if require_key and not key.strip("/"):
            raise UsageError(f"S3 URI {uri!r} names no object", hint=f"use {expected}")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def as_prefix(self) -> S3Location:
        """The same place as a folder: its key empty or ending with ``/``."""
        key = self.key.strip("/")
        return S3Location(self.bucket, f"{key}/" if key else "")

    def child(self, name: str) -> S3Location:
        """``name`` (a relative key) under this location taken as a folder."""
        return S3Location(self.bucket, self.as_prefix().key + name.lstrip("/"))

    def __str__(self) -> str:
        return self.uri


def translate_s3(exc: BaseException, *, what: str, location: S3Location) -> MlopsError:
    """The one translation of a failed S3 call on ``location`` (an mlops error passes through)."""
    if isinstance(exc, MlopsError):
        return exc
    code = error_code(exc)
    if code == "NoSuchBucket":
        return NotFoundError(
            f"{what}: bucket {location.bucket} does not exist ({location.uri})",
            hint=f"create it first: aws s3 mb s3://{location.bucket}",
        )
    if code in DENIED_CODES:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message") or "")
        detail = f"{code}: {message}" if message and message != code else code
        return CredentialsError(
            f"{what}: AWS refused the credentials for {location.uri} ({detail})",
            hint=f"check the profile or keys, and that they may read and write "
            f"s3://{location.bucket}/{location.as_prefix().key}",
        )
    return translate(exc, what=f"{what} ({location.uri})")
