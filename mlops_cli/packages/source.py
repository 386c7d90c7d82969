"""What a package is made from: a model folder, or a Hugging Face snapshot.

:func:`prepare_source` scans and validates a source without reading file contents or writing
anything; the :class:`PreparedSource` it returns is what every way of building a package (the
upload pipeline, build-then-push, the "already published" shortcut) turns into a manifest once the
files' digests are known.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_cli.errors import UsageError
from mlops_cli.packages.manifest import FileEntry, PackageError, PackageManifest
from mlops_cli.packages.scan import ScannedFile, scan_folder
from mlops_cli.spec.modelspec import SPEC_FILE, HFSource, ModelSpec

if TYPE_CHECKING:
    from mlops_cli.spec.checks import Finding


@dataclass(frozen=True)
class PreparedSource:
    """A source scanned and validated, not yet hashed."""

    name: str
    files: list[ScannedFile]
    origin: dict[str, str]
    spec: ModelSpec | None
    warnings: tuple[Finding, ...] = ()

    def manifest(self, digests: list[str]) -> PackageManifest:
        """The manifest of these files, given each file's digest (in the same order)."""
        entries = tuple(
            FileEntry(path=item.relative, size=item.size, sha256=digest, executable=item.executable)
            for item, digest in zip(self.files, digests, strict=True)
        )
        return PackageManifest(name=self.name, files=entries, source=dict(self.origin))


def _package_name(repo_id: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", repo_id.lower().replace("/", "--")).strip("-._")
    return name[:64] or "model"


def _scan_hf(source: HFSource) -> tuple[list[ScannedFile], dict[str, str]]:
    from mlops_cli.packages.huggingface import resolve

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
    from mlops_cli.spec.checks import validate_model_dir

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
