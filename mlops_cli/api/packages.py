"""Library calls for model folders and packages: new folders from templates, validate, upload,
register, and reading stored packages back (show, download, render), and checking the store (verify).

Each call takes plain typed arguments and the :class:`~mlops_cli.config.Settings` it needs, reports
progress through an injected :class:`~mlops_cli.progress.Reporter`, and returns a frozen result
with ``to_dict()`` (the ``--json`` document). Heavy modules are imported inside the calls, so that
importing the api costs nothing at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops_cli.api.outcome import OK, Outcome
from mlops_cli.errors import EXIT_USAGE, MlopsError
from mlops_cli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from mlops_cli.config import Settings
    from mlops_cli.packages.manifest import PackageManifest
    from mlops_cli.packages.upload_result import UploadResult
    from mlops_cli.registry.base import Registered
    from mlops_cli.spec.checks import Finding
    from mlops_cli.spec.modelspec import ModelSpec
    from mlops_cli.stores import ArtifactStore
    from mlops_cli.stores.verify import StoreVerifyResult


@dataclass(frozen=True)
class NewModelFolder:
    """A model folder written from a template."""

    path: Path
    template: str
    template_title: str  # what the template is, in words
    name: str
    files: tuple[str, ...]  # POSIX paths relative to ``path``, sorted

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "template": self.template,
            "name": self.name,
            "files": list(self.files),
        }


def new_model_folder(
    *, folder: Path, template: str = "triton-python", name: str | None = None, force: bool = False
) -> NewModelFolder:
    """Write mlops.yaml, runnable inference code and small generated weights into ``folder``
    (absent or empty; ``force`` writes into a non-empty one). ``name`` defaults to the folder's."""
    from mlops_cli.spec.scaffold import TEMPLATES, init_model

    made = init_model(folder, template=template, name=name, force=force)
    return NewModelFolder(made.path, made.template, TEMPLATES[made.template], made.name, made.files)


@dataclass(frozen=True)
class ValidationReport:
    """Every finding about a model folder; exit 2 when any is an error."""

    source: str  # the mlops.yaml the findings name
    spec: ModelSpec | None  # None when the schema failed
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def outcome(self) -> Outcome:
        return Outcome(exit_code=EXIT_USAGE) if self.errors else OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": not self.errors,
            "name": self.spec.name if self.spec else None,
            "runtime": self.spec.runtime if self.spec else None,
            "findings": [finding.to_dict() for finding in self.findings],
        }


def validate(*, folder: Path) -> ValidationReport:
    """Check a model folder's mlops.yaml (schema), code, shapes and files, all at once, without
    uploading anything: what ``upload`` would refuse."""
    from mlops_cli.spec.checks import inspect_model_dir

    inspection = inspect_model_dir(folder)
    return ValidationReport(inspection.source, inspection.spec, inspection.findings)


def _hash_cache(settings: Settings) -> Any:
    from mlops_cli.packages.hashcache import HashCache

    return HashCache(settings.workspace / "cache" / "hashes.json")


def upload(
    *, source: str, settings: Settings, use_cache: bool = True, reporter: Reporter = SILENT
) -> UploadResult:
    """Package ``source`` (a model folder or ``hf://org/name@revision``) and send the blobs the
    configured store lacks, the manifest last. ``use_cache=False`` hashes every file again."""
    from mlops_cli.packages.upload import upload as run_upload
    from mlops_cli.stores import open_store

    cache = _hash_cache(settings) if use_cache else None
    return run_upload(source, open_store(settings.store), reporter=reporter, cache=cache)


@dataclass(frozen=True)
class RegisterResult:
    registered: Registered
    package_uri: str
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        version = self.registered.version
        return {
            "model": version.model,
            "version": version.version,
            "created": self.registered.created,
            "package_digest": version.package_digest,
            "package_uri": self.package_uri,
            "uploaded": self.uploaded,
            "code_digest": version.code_digest,
            "lineage": dict(version.lineage),
            "source": dict(version.source),
        }


def register(
    *,
    source: str,
    settings: Settings,
    model: str | None = None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
    new_version: bool = False,
    verify: Literal["sizes", "full"] = "sizes",
    reporter: Reporter = SILENT,
) -> RegisterResult:
    """Record a package (URI, ``sha256:<hex>`` in the configured store, a model folder or an
    ``hf://`` source, uploaded first) as the next immutable version of a model, with lineage.

    The package is verified first (its manifest hashes to its digest, every blob is in the store
    at its size; ``verify="full"`` reads and hashes every blob), so nothing is recorded for a
    package that could not be served, and its ``mlops.yaml`` must be valid (its entrypoint a file
    of the package). ``model`` defaults to the package's name."""
    from mlops_cli.packages.lineage import code_digest, lineage_of
    from mlops_cli.packages.reference import PackageRef
    from mlops_cli.packages.upload import upload as run_upload
    from mlops_cli.packages.verify import verify_package
    from mlops_cli.registry import open_registry
    from mlops_cli.registry.base import NewVersion, check_name
    from mlops_cli.render.common import stored_spec
    from mlops_cli.stores import open_store

    registry = open_registry(settings.registry)
    if model is not None:
        check_name("model", model)
    if alias is not None:
        check_name("alias", alias)
    for key in tags or {}:
        check_name("tag", key)
    uploaded = False
    lineage_folder = Path.cwd()
    if source.startswith("hf://") or Path(source).is_dir():
        store = open_store(settings.store)
        result = run_upload(source, store, reporter=reporter, cache=_hash_cache(settings))
        digest, uploaded = result.digest, True
        if Path(source).is_dir():
            lineage_folder = Path(source).resolve()
    else:
        ref = PackageRef.parse(source)
        store, digest = open_store(ref.store or settings.store), ref.digest
    manifest = verify_package(store, digest, verify=verify, reporter=reporter)
    stored_spec(store, manifest)  # a package made elsewhere meets the spec's rules too
    registered = registry.register_version(
        model or manifest.name,
        NewVersion(
            package_digest=digest,
            package_uri=store.package_uri(digest),
            code_digest=code_digest(manifest),
            source=dict(manifest.source),
            lineage=lineage_of(lineage_folder),
            tags=dict(tags or {}),
            description=description,
        ),
        new_version=new_version,
        alias=alias,
    )
    if alias is not None and not registered.created:
        registry.set_alias(registered.version.model, alias, registered.version.version)
    return RegisterResult(
        registered=registered, package_uri=store.package_uri(digest), uploaded=uploaded
    )


@dataclass(frozen=True)
class OpenedPackage:
    """A package to read: the store that holds it and its digest."""

    store: ArtifactStore
    digest: str


def open_package(*, ref: str, settings: Settings, reporter: Reporter = SILENT) -> OpenedPackage:
    """The store holding ``ref`` (a package URI, or ``sha256:<hex>`` in the configured store).
    A local model folder (or ``hf://`` source) is built in place and read from its own files."""
    from mlops_cli.packages.reference import PackageRef
    from mlops_cli.stores import open_store

    if ref.startswith("hf://") or Path(ref).is_dir():
        from mlops_cli.packages.build import build_package, folder_view

        build = build_package(ref, reporter=reporter, cache=_hash_cache(settings))
        return OpenedPackage(folder_view(build, ref), build.manifest.digest)
    parsed = PackageRef.parse(ref)
    return OpenedPackage(open_store(parsed.store or settings.store), parsed.digest)


@dataclass(frozen=True)
class PackageListing:
    """A package's verified manifest."""

    digest: str
    uri: str
    manifest: PackageManifest

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "uri": self.uri, **self.manifest.to_dict()}


def show_package(*, ref: str, settings: Settings, reporter: Reporter = SILENT) -> PackageListing:
    """A package's manifest (files, sizes, digests), read and verified."""
    opened = open_package(ref=ref, settings=settings, reporter=reporter)
    manifest = opened.store.get_manifest(opened.digest)
    return PackageListing(opened.digest, opened.store.package_uri(opened.digest), manifest)


@dataclass(frozen=True)
class DownloadResult:
    digest: str
    path: Path
    manifest: PackageManifest

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "path": str(self.path),
            "files": len(self.manifest.files),
            "bytes": self.manifest.total_bytes,
        }


def download(
    *, ref: str, dest: Path, settings: Settings, reporter: Reporter = SILENT
) -> DownloadResult:
    """Write a package's files into ``dest``, each verified against its sha256."""
    from mlops_cli.packages.download import download_package

    opened = open_package(ref=ref, settings=settings, reporter=reporter)
    manifest = download_package(opened.store, opened.digest, dest, reporter=reporter)
    return DownloadResult(opened.digest, dest, manifest)


@dataclass(frozen=True)
class RenderResult:
    """A rendered package: a Triton repository entry (``path``) or a SageMaker tarball (``uri``)."""

    format: Literal["triton", "sagemaker"]
    digest: str
    path: Path | None = None  # triton: the model folder
    version: int | None = None  # triton: the version folder
    uri: str | None = None  # sagemaker: where model.tar.gz was written
    bytes: int | None = None  # sagemaker: its size

    def to_dict(self) -> dict[str, Any]:
        if self.format == "triton":
            return {
                "format": self.format,
                "digest": self.digest,
                "path": str(self.path),
                "version": self.version,
            }
        return {"format": self.format, "digest": self.digest, "uri": self.uri, "bytes": self.bytes}


def render(
    *,
    ref: str,
    out: str,
    settings: Settings,
    format: Literal["triton", "sagemaker"] = "triton",
    version: int = 1,
    device: Literal["gpu", "cpu"] | None = None,
    reporter: Reporter = SILENT,
) -> RenderResult:
    """Render a package as a Triton model repository entry under ``out`` (a folder), or as a
    SageMaker ``model.tar.gz`` at ``out`` (a path or ``s3://bucket/key``)."""
    opened = open_package(ref=ref, settings=settings, reporter=reporter)
    manifest = opened.store.get_manifest(opened.digest)
    if format == "triton":
        from mlops_cli.render.triton import render_triton

        model_dir = render_triton(
            opened.store, manifest, Path(out), version=version, device=device, reporter=reporter
        )
        return RenderResult(format, opened.digest, path=model_dir, version=version)
    from mlops_cli.render.sagemaker import publish_tarball

    tarball = publish_tarball(opened.store, manifest, out, device=device, reporter=reporter)
    return RenderResult(format, opened.digest, uri=tarball.uri, bytes=tarball.bytes)


@dataclass(frozen=True)
class StoreCheck:
    """What ``verify_store`` found; exit 1 while damaged blobs are left in place."""

    result: StoreVerifyResult

    @property
    def outcome(self) -> Outcome:
        left = self.result.unrepaired
        if not left:
            return OK
        repair = self.result.repair
        return Outcome.failed(
            MlopsError(
                f"{len(left)} of {self.result.blobs} blobs in {self.result.store} are damaged"
                + (" and could not be moved aside" if repair else ""),
                hint=(
                    "check that the store is writable, then run it again"
                    if repair
                    else "run `mlops store verify --repair` to move them to quarantine/, "
                    "then upload again"
                ),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return self.result.to_dict()


def verify_store(
    *, settings: Settings, repair: bool = False, reporter: Reporter = SILENT
) -> StoreCheck:
    """Hash every blob of the configured store against its name; with ``repair``, move the
    damaged ones to the store's ``quarantine/`` so that the next upload sends them again."""
    from mlops_cli.stores import open_store
    from mlops_cli.stores.verify import verify_store as run_verify

    return StoreCheck(run_verify(open_store(settings.store), repair=repair, reporter=reporter))
