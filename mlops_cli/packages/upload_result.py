"""What an upload reports: the package it published and what it cost (bytes and blobs sent)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from mlops_cli.packages.manifest import PackageManifest


@dataclass(frozen=True)
class UploadResult:
    digest: str
    uri: str
    name: str
    files: int
    bytes_total: int
    bytes_sent: int
    blobs_total: int
    blobs_sent: int
    seconds: float
    source: dict[str, str]
    warnings: tuple[str, ...] = ()  # findings that did not stop the upload (e.g. empty weights)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(
        cls, manifest: PackageManifest, uri: str, *, sent: int, blobs_sent: int, started: float
    ) -> UploadResult:
        """The result of publishing ``manifest`` at ``uri``, timed from ``started``
        (a :func:`time.perf_counter` reading)."""
        return cls(
            digest=manifest.digest,
            uri=uri,
            name=manifest.name,
            files=len(manifest.files),
            bytes_total=manifest.total_bytes,
            bytes_sent=sent,
            blobs_total=len(manifest.blob_digests()),
            blobs_sent=blobs_sent,
            seconds=round(time.perf_counter() - started, 3),
            source=dict(manifest.source),
        )
