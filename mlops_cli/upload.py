"""Build a package from a model folder or a Hugging Face snapshot and put it in a store.

build_package(source)  -> PackageBuild (manifest + where each blob's bytes are on disk)
push_package(build, store) -> UploadResult (blobs the store lacks, then the manifest, last)
upload(source, store)  -> both
download_package(store, digest, dest) -> the files back, verified
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.errors import UsageError
from mlops_cli.hashcache import RACY_MARGIN_NS, HashCache
from mlops_cli.modelspec import SPEC_FILE, HFSource, ModelSpec
from mlops_cli.package import (
    FileChangedError,
    FileEntry,
    PackageError,
    PackageManifest,
    ScannedFile,
    build_manifest,
    hash_file,
    scan_folder,
)
from mlops_cli.progress import SILENT, Reporter, Task, running
from mlops_cli.stores.base import ArtifactStore, Unchanged

FILE_WORKERS = 4

if TYPE_CHECKING:
    from mlops_cli.checks import Finding


@dataclass(frozen=True)
class PreparedSource:
    """A source scanned and validated, not yet hashed."""

    name: str
    files: list[ScannedFile]
    origin: dict[str, str]
    spec: ModelSpec | None
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class PackageBuild:
    manifest: PackageManifest
    scanned: dict[str, ScannedFile]  # blob digest -> a file holding those bytes
    spec: ModelSpec | None
    warnings: tuple[Finding, ...] = ()


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


def _package_name(repo_id: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", repo_id.lower().replace("/", "--")).strip("-._")
    return name[:64] or "model"


def _scan_hf(source: HFSource) -> tuple[list[ScannedFile], dict[str, str]]:
    from mlops_cli.sources.huggingface import resolve

    snapshot = resolve(source)
    files = scan_folder(snapshot.folder, links_within=snapshot.repo_root)
    if source.allow_patterns:
        # A snapshot found in the cache may hold more files than were asked for.
        files = [
            f for f in files if any(fnmatch.fnmatch(f.relative, p) for p in source.allow_patterns)
        ]
        if not files:
            raise PackageError(f"no file of {source.uri} matches {list(source.allow_patterns)}")
    return files, snapshot.record()


def prepare_source(source: str | Path) -> PreparedSource:
    """Scan and validate ``source`` (a model folder, or ``hf://org/name@revision``).

    A folder needs a valid ``mlops.yaml``; when the spec names a Hugging Face ``source``, the
    snapshot's files join the folder's (a path in both is an error). Nothing is read but
    metadata and the spec, and nothing is written.
    """
    text = str(source)
    if text.startswith("hf://"):
        files, record = _scan_hf(HFSource.parse(text))
        return PreparedSource(
            name=_package_name(record["repo"]), files=files, origin=record, spec=None
        )
    if "://" in text:
        raise UsageError(
            f"unsupported source {text!r}", hint="give a model folder or hf://org/name@revision"
        )
    folder = Path(text)
    if folder.is_dir() and not any(folder.iterdir()):
        raise PackageError(
            f"{folder} is empty: nothing to upload", hint="create a model with `mlops init DIR`"
        )
    from mlops_cli.checks import validate_model_dir

    spec, findings = validate_model_dir(folder)
    files = scan_folder(folder, ignore=spec.ignore)
    origin: dict[str, str] = {}
    if spec.source is not None:
        extra, origin = _scan_hf(spec.source)
        clash = {f.relative for f in files} & {f.relative for f in extra}
        if clash:
            raise PackageError(
                f"{sorted(clash)[0]} is both in the folder and in {spec.source.uri}",
                source=str(folder / SPEC_FILE),
                hint="remove one of them, or narrow source.allow_patterns",
            )
        files = sorted([*files, *extra], key=lambda f: f.relative)
    return PreparedSource(
        name=spec.name, files=files, origin=origin, spec=spec, warnings=tuple(findings)
    )


def unchanged_check(item: ScannedFile) -> Unchanged | None:
    """A cheap proof that ``item`` still holds the bytes that were hashed: its identity, size,
    mtime and ctime are those seen before hashing. None when the file is too fresh for its
    timestamps to be trusted (then the store hashes the bytes it sends instead)."""
    if time.time_ns() - item.mtime_ns < RACY_MARGIN_NS:
        return None

    def check() -> bool:
        try:
            info = os.stat(item.absolute)
        except OSError:
            return False
        seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        return seen == item.fingerprint

    return check


def build_package(
    source: str | Path,
    *,
    reporter: Reporter = SILENT,
    cache: HashCache | None = None,
) -> PackageBuild:
    """Scan, validate and hash ``source`` into a manifest. Nothing is written but the cache."""
    prepared = prepare_source(source)
    total = sum(item.size for item in prepared.files)
    with running(
        reporter, f"hashing {len(prepared.files)} files", total=total, unit="bytes"
    ) as task:
        manifest = build_manifest(
            prepared.name,
            prepared.files,
            source=prepared.origin,
            on_bytes=task.advance,
            cache=cache,
        )
    scanned: dict[str, ScannedFile] = {}
    for entry, item in zip(manifest.files, prepared.files, strict=True):
        scanned.setdefault(entry.sha256, item)
    return PackageBuild(
        manifest=manifest, scanned=scanned, spec=prepared.spec, warnings=prepared.warnings
    )


def _result(
    manifest: PackageManifest, uri: str, sent: int, blobs_sent: int, started: float
) -> UploadResult:
    return UploadResult(
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


def push_package(
    build: PackageBuild,
    store: ArtifactStore,
    *,
    reporter: Reporter = SILENT,
    workers: int = FILE_WORKERS,
) -> UploadResult:
    """Send the blobs ``store`` lacks, then publish the manifest. Idempotent."""
    started = time.perf_counter()
    manifest = build.manifest
    digests = manifest.blob_digests()
    absent = store.missing_blobs(digests)
    missing = [d for d in digests if d in absent]
    to_send = sum(build.scanned[d].size for d in missing)
    sent_before = store.stats.blob_bytes_sent
    with running(
        reporter, f"uploading {len(missing)} of {len(digests)} blobs", total=to_send, unit="bytes"
    ) as task:

        def send(digest: str) -> None:
            item = build.scanned[digest]
            store.put_blob(
                digest, item.absolute, on_bytes=task.advance, unchanged=unchanged_check(item)
            )

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for future in [pool.submit(send, d) for d in missing]:
                future.result()
    uri = store.put_manifest(manifest)
    return _result(manifest, uri, store.stats.blob_bytes_sent - sent_before, len(missing), started)


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
        published = _already_published(source, store, cache, started)
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
    manifest = _manifest(prepared, digests)
    uri = store.put_manifest(manifest)
    result = _result(
        manifest, uri, store.stats.blob_bytes_sent - sent_before, pipeline.blobs_sent, started
    )
    return replace(result, warnings=warnings)


def _already_published(
    source: str | Path, store: ArtifactStore, cache: HashCache, started: float
) -> UploadResult | None:
    """The result of an upload that has nothing to do, or None when there may be work.

    When every file of a folder is in the hash cache unchanged, the manifest is known without
    reading a byte; if the store already holds it and every blob it names (a blob that failed
    verification was moved to quarantine and must be sent again), the package was validated and
    stored whole when it was first uploaded, so existence checks are all this upload costs.
    """
    folder = Path(source)
    if str(source).startswith("hf://") or not (folder / SPEC_FILE).is_file():
        return None
    try:
        from mlops_cli.modelspec import read_yaml

        document = read_yaml(folder / SPEC_FILE)  # bounded: a hostile spec costs nothing here
        name, ignore = document["name"], tuple(document.get("ignore", ()))
        if not isinstance(name, str) or "source" in document:
            return None
        files = scan_folder(folder, ignore=ignore)
    except Exception:
        return None  # the full path reports whatever is wrong
    digests = [cache.lookup(item) for item in files]
    if any(digest is None for digest in digests):
        return None
    prepared = PreparedSource(name=name, files=files, origin={}, spec=None)
    manifest = _manifest(prepared, [d for d in digests if d is not None])
    if not store.has_package(manifest.digest) or store.missing_blobs(manifest.blob_digests()):
        return None
    return _result(manifest, store.package_uri(manifest.digest), 0, 0, started)


def _manifest(prepared: PreparedSource, digests: list[str]) -> PackageManifest:
    entries = tuple(
        FileEntry(path=item.relative, size=item.size, sha256=digest, executable=item.executable)
        for item, digest in zip(prepared.files, digests, strict=True)
    )
    return PackageManifest(name=prepared.name, files=entries, source=dict(prepared.origin))


def folder_view(build: PackageBuild, label: str) -> ArtifactStore:
    """A read-only store over a built package's own files (render without uploading)."""
    from mlops_cli.stores.folder import FolderView

    return FolderView(
        build.manifest, {d: item.absolute for d, item in build.scanned.items()}, label=label
    )


def parse_package_ref(ref: str) -> tuple[str | None, str]:
    """``<store-uri>/packages/sha256/<hex>.json`` or ``sha256:<hex>`` -> (store URI or None, hex)."""
    match = re.fullmatch(
        r"(?:(?P<store>.+)/packages/sha256/)?(?:sha256:)?(?P<hex>[0-9a-f]{64})(?:\.json)?", ref
    )
    if match is None:
        raise UsageError(
            f"{ref!r} is neither a model folder nor a package reference",
            hint="give a folder holding mlops.yaml, the uri printed by `mlops upload`, or sha256:<digest> with --store",
        )
    return match.group("store"), match.group("hex")


def download_package(
    store: ArtifactStore, digest: str, dest: Path, *, reporter: Reporter = SILENT
) -> PackageManifest:
    """Write every file of a package under ``dest``, each verified against its digest."""
    manifest = store.get_manifest(digest)
    with running(
        reporter, f"downloading {manifest.name}", total=manifest.total_bytes, unit="bytes"
    ) as task:
        for entry in manifest.files:
            target = dest / entry.path
            store.read_blob(entry.sha256, target, on_bytes=task.advance)
            target.chmod(0o755 if entry.executable else 0o644)
    return manifest
