"""Upload a model folder or a Hugging Face snapshot to an artifact store, in one pipeline.

Each file is hashed (or, in a store that can, ingested: the digest computed from the bytes it
writes, in a single pass) and sent as soon as it is ready, several files at a time, the largest
first; the manifest is published last, so a package exists whole or not at all. With a hash cache,
an unchanged model costs one request (:mod:`mlops_cli.packages.published`).

The other ways in and out of a store are their own modules: build then push
(:mod:`~mlops_cli.packages.build`), download (:mod:`~mlops_cli.packages.download`), and the
source a package is made from (:mod:`~mlops_cli.packages.source`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from mlops_cli.packages.hashcache import HashCache
from mlops_cli.packages.hashing import hash_file
from mlops_cli.packages.manifest import FileChangedError
from mlops_cli.packages.published import already_published
from mlops_cli.packages.scan import ScannedFile, unchanged_check
from mlops_cli.packages.source import prepare_source
from mlops_cli.packages.upload_result import UploadResult
from mlops_cli.progress import SILENT, Reporter, Task, running
from mlops_cli.spec.modelspec import SPEC_FILE
from mlops_cli.stores.base import ArtifactStore

FILE_WORKERS = 4


class _Pipeline:
    """Hash (or ingest) and send each file as soon as it is ready, several files at a time."""

    def __init__(
        self,
        store: ArtifactStore,
        cache: HashCache | None,
        upload_task: Task,
        hash_task: Task,
        *,
        files: int,
    ) -> None:
        self.store = store
        self.cache = cache
        self.upload_task = upload_task
        self.hash_task = hash_task
        self._lock = threading.Lock()
        self._claimed: set[str] = set()
        self.blobs_sent = 0
        self.files = files
        self.files_done = 0

    def _claim(self, digest: str) -> bool:
        with self._lock:
            if digest in self._claimed:
                return False
            self._claimed.add(digest)
            return True

    def process(self, item: ScannedFile) -> str:
        digest = self.cache.lookup(item) if self.cache is not None else None
        if digest is None and self.store.can_ingest:
            digest, size, sent = self.store.ingest(
                item.absolute, on_bytes=self.upload_task.advance, unchanged=unchanged_check(item)
            )
            if size != item.size:
                raise FileChangedError(item.relative)
            self._remember(item, digest, sent)
            return digest
        if digest is None:
            digest, size = hash_file(item.absolute, self.hash_task.advance)
            if size != item.size:
                raise FileChangedError(item.relative)
        sent = 0
        if self._claim(digest) and self.store.missing_blobs([digest]):
            sent = self.store.put_blob(
                digest,
                item.absolute,
                on_bytes=self.upload_task.advance,
                unchanged=unchanged_check(item),
            )
        if not sent:
            self.upload_task.advance(item.size)
        self._remember(item, digest, sent)
        return digest

    def _remember(self, item: ScannedFile, digest: str, sent: int) -> None:
        if self.cache is not None:
            self.cache.record(item, digest)
        with self._lock:
            self.blobs_sent += 1 if sent else 0
            self.files_done += 1
            done = self.files_done
        self.upload_task.update(f"uploaded {done} of {self.files} files")


def upload(
    source: str | Path,
    store: ArtifactStore,
    *,
    reporter: Reporter = SILENT,
    cache: HashCache | None = None,
    workers: int = FILE_WORKERS,
) -> UploadResult:
    """Upload ``source`` to ``store``: the blobs it lacks, then the manifest, last.

    Files are hashed and sent in one pipeline (a file store computes the digest from the bytes
    it writes, in a single pass). With a hash cache, an unchanged model costs one request: its
    manifest is already there, so nothing else is.
    """
    started = time.perf_counter()
    if cache is not None:
        published = already_published(source, store, cache, started)
        if published is not None:
            return published
    prepared = prepare_source(source)
    warnings = tuple(
        finding.line(SPEC_FILE) for finding in prepared.warnings if finding.severity == "warning"
    )
    files = prepared.files
    total = sum(item.size for item in files)
    to_hash = (
        0
        if store.can_ingest
        else sum(item.size for item in files if cache is None or cache.lookup(item) is None)
    )
    sent_before = store.stats.blob_bytes_sent
    with (
        running(
            reporter, f"uploading {len(files)} files", total=total, unit="bytes"
        ) as upload_task,
        running(reporter, f"hashing {len(files)} files", total=to_hash, unit="bytes") as hash_task,
    ):
        pipeline = _Pipeline(store, cache, upload_task, hash_task, files=len(files))
        # Largest first: the long transfers start early and small files fill the gaps.
        order = sorted(range(len(files)), key=lambda i: -files[i].size)
        digests: list[str] = [""] * len(files)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {i: pool.submit(pipeline.process, files[i]) for i in order}
            for index, future in futures.items():
                digests[index] = future.result()
    if cache is not None:
        cache.save()
    manifest = prepared.manifest(digests)
    uri = store.put_manifest(manifest)
    sent = store.stats.blob_bytes_sent - sent_before
    result = UploadResult.of(
        manifest, uri, sent=sent, blobs_sent=pipeline.blobs_sent, started=started
    )
    return replace(result, warnings=warnings)
