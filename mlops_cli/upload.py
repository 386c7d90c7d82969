"""Build a package from a model folder or a Hugging Face snapshot and put it in a store.

build_package(source)  -> PackageBuild (manifest + where each blob's bytes are on disk)
push_package(build, store) -> UploadResult (blobs the store lacks, then the manifest, last)
upload(source, store)  -> both
download_package(store, digest, dest) -> the files back, verified
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_cli.checks import Finding, validate_model_dir
from mlops_cli.errors import NotFoundError, UsageError
from mlops_cli.hashcache import HashCache
from mlops_cli.modelspec import SPEC_FILE, HFSource, ModelSpec
from mlops_cli.package import (
    PackageError,
    PackageManifest,
    ScannedFile,
    build_manifest,
    scan_folder,
)
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.stores.base import ArtifactStore

FILE_WORKERS = 4


@dataclass(frozen=True)
class PackageBuild:
    manifest: PackageManifest
    paths: dict[str, Path]  # blob digest -> a file holding those bytes
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _package_name(repo_id: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", repo_id.lower().replace("/", "--")).strip("-._")
    return name[:64] or "model"


def _scan_hf(source: HFSource) -> tuple[list[ScannedFile], dict[str, str]]:
    from mlops_cli.sources.huggingface import resolve

    snapshot = resolve(source)
    return scan_folder(snapshot.folder, links_within=snapshot.repo_root), snapshot.record()


def build_package(
    source: str | Path,
    *,
    reporter: Reporter = SILENT,
    cache: HashCache | None = None,
) -> PackageBuild:
    """Scan, validate and hash ``source`` (a model folder, or ``hf://org/name@revision``).

    A folder needs a valid ``mlops.yaml``; when the spec names a Hugging Face ``source``, the
    snapshot's files join the folder's (a path in both is an error). Nothing is written.
    """
    text = str(source)
    spec: ModelSpec | None = None
    warnings: tuple[Finding, ...] = ()
    origin: dict[str, str] = {}
    if text.startswith("hf://"):
        files, origin = _scan_hf(HFSource.parse(text))
        name = _package_name(origin["repo"])
    elif "://" in text:
        raise UsageError(
            f"unsupported source {text!r}", hint="give a model folder or hf://org/name@revision"
        )
    else:
        folder = Path(text)
        if folder.is_dir() and not any(folder.iterdir()):
            raise PackageError(
                f"{folder} is empty: nothing to upload", hint="create a model with `mlops init DIR`"
            )
        spec, findings = validate_model_dir(folder)
        warnings = tuple(findings)
        name = spec.name
        files = scan_folder(folder, ignore=spec.ignore)
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
    total = sum(item.size for item in files)
    with running(reporter, f"hashing {len(files)} files", total=total, unit="bytes") as task:
        manifest = build_manifest(name, files, source=origin, on_bytes=task.advance, cache=cache)
    paths: dict[str, Path] = {}
    for entry, item in zip(manifest.files, files, strict=True):
        paths.setdefault(entry.sha256, item.absolute)
    return PackageBuild(manifest=manifest, paths=paths, spec=spec, warnings=warnings)


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
    sizes = {entry.sha256: entry.size for entry in manifest.files}
    to_send = sum(sizes[d] for d in missing)
    sent_before = store.stats.blob_bytes_sent
    with running(
        reporter, f"uploading {len(missing)} of {len(digests)} blobs", total=to_send, unit="bytes"
    ) as task:
        done = 0

        def send(digest: str) -> None:
            nonlocal done
            store.put_blob(digest, build.paths[digest], on_bytes=task.advance)
            done += 1
            task.update(f"uploaded {done} of {len(missing)} blobs")

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for future in [pool.submit(send, d) for d in missing]:
                future.result()
    uri = store.put_manifest(manifest)
    return UploadResult(
        digest=manifest.digest,
        uri=uri,
        name=manifest.name,
        files=len(manifest.files),
        bytes_total=manifest.total_bytes,
        bytes_sent=store.stats.blob_bytes_sent - sent_before,
        blobs_total=len(digests),
        blobs_sent=len(missing),
        seconds=round(time.perf_counter() - started, 3),
        source=dict(manifest.source),
    )


def upload(
    source: str | Path,
    store: ArtifactStore,
    *,
    reporter: Reporter = SILENT,
    cache: HashCache | None = None,
) -> UploadResult:
    """Build the package of ``source`` and push it to ``store``."""
    started = time.perf_counter()
    build = build_package(source, reporter=reporter, cache=cache)
    for finding in build.warnings:
        if finding.severity == "warning":
            reporter.note(f"warning: {finding.line(SPEC_FILE)}")
    result = push_package(build, store, reporter=reporter)
    return UploadResult(**{**result.to_dict(), "seconds": round(time.perf_counter() - started, 3)})


def parse_package_ref(ref: str) -> tuple[str | None, str]:
    """``<store-uri>/packages/sha256/<hex>.json`` or ``sha256:<hex>`` -> (store URI or None, hex)."""
    match = re.fullmatch(
        r"(?:(?P<store>.+)/packages/sha256/)?(?:sha256:)?(?P<hex>[0-9a-f]{64})(?:\.json)?", ref
    )
    if match is None:
        raise NotFoundError(
            f"not a package reference: {ref!r}",
            hint="use the uri printed by `mlops upload`, or sha256:<digest> with --store",
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
