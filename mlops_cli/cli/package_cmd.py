"""`mlops package`: read a stored package back (show, download, render for a server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.render_helpers import human_bytes, short

if TYPE_CHECKING:
    from rich.console import Console

    from mlops_cli.stores import ArtifactStore

app = typer.Typer(help="Inspect, download and render stored packages.", no_args_is_help=True)

PackageArg = Annotated[
    str, typer.Argument(help="Package URI printed by upload, or sha256:<digest>.")
]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Artifact store URI (for sha256:<digest>).")
]


def _open(cli: CliContext, ref: str, store: str | None) -> tuple[ArtifactStore, str]:
    """The store holding ``ref`` and its digest. A local model folder (or hf:// source) is
    built in place and served from its own files."""
    from mlops_cli.stores import open_store
    from mlops_cli.upload import parse_package_ref

    if ref.startswith("hf://") or Path(ref).is_dir():
        from mlops_cli.hashcache import HashCache
        from mlops_cli.upload import build_package, folder_view

        settings = cli.settings()
        cache = HashCache(settings.workspace / "cache" / "hashes.json")
        build = build_package(ref, reporter=cli.reporter(), cache=cache)
        return folder_view(build, ref), build.manifest.digest

    store_uri, digest = parse_package_ref(ref)
    settings = cli.settings({"store": store_uri or store})
    return open_store(settings.store), digest


@app.command("show")
def show(ctx: typer.Context, package: PackageArg, store: StoreOpt = None) -> None:
    """Print a package's manifest (files, sizes, digests), verified."""
    cli: CliContext = ctx.obj
    artifact_store, digest = _open(cli, package, store)
    manifest = artifact_store.get_manifest(digest)
    result: dict[str, Any] = {
        "digest": digest,
        "uri": artifact_store.package_uri(digest),
        **manifest.to_dict(),
    }

    def human(console: Console) -> None:
        console.print(
            f"{manifest.name} {short(digest)}  {len(manifest.files)} files, {human_bytes(manifest.total_bytes)}"
        )
        for entry in manifest.files:
            console.print(f"  {human_bytes(entry.size):>10}  {entry.sha256[:12]}  {entry.path}")

    cli.emit(result, human)


@app.command("download")
def download(
    ctx: typer.Context,
    package: PackageArg,
    dest: Annotated[Path, typer.Argument(help="Folder to write the files into.")],
    store: StoreOpt = None,
) -> None:
    """Write a package's files into DEST, each verified against its sha256."""
    from mlops_cli.upload import download_package

    cli: CliContext = ctx.obj
    artifact_store, digest = _open(cli, package, store)
    manifest = download_package(artifact_store, digest, dest, reporter=cli.reporter())
    cli.emit(
        {
            "digest": digest,
            "path": str(dest),
            "files": len(manifest.files),
            "bytes": manifest.total_bytes,
        },
        lambda console: console.print(f"wrote {len(manifest.files)} files to {dest}"),
    )


@app.command("render")
def render(
    ctx: typer.Context,
    package: PackageArg,
    out: Annotated[
        str,
        typer.Option(
            "--out", help="Triton: a model repository folder. SageMaker: a path or s3://bucket/key."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="triton or sagemaker.")] = "triton",
    version: Annotated[int, typer.Option(min=1, help="Triton model version folder.")] = 1,
    device: Annotated[
        str | None, typer.Option(help="Triton instance kind: gpu or cpu (default: from the spec).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Render a package as a Triton model repository entry or a SageMaker model.tar.gz."""
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    if fmt not in ("triton", "sagemaker"):
        raise UsageError(
            f"unknown format {fmt!r}", hint="use --format triton or --format sagemaker"
        )
    if device not in (None, "gpu", "cpu"):
        raise UsageError(f"unknown device {device!r}", hint="use --device gpu or --device cpu")
    artifact_store, digest = _open(cli, package, store)
    manifest = artifact_store.get_manifest(digest)
    if fmt == "triton":
        from mlops_cli.render.triton import render_triton

        model_dir = render_triton(
            artifact_store,
            manifest,
            Path(out),
            version=version,
            device=device,
            reporter=cli.reporter(),
        )
        cli.emit(
            {"format": fmt, "digest": digest, "path": str(model_dir), "version": version},
            lambda console: console.print(
                f"wrote {model_dir}/{version} and {model_dir}/config.pbtxt"
            ),
        )
        return
    from mlops_cli.render.sagemaker import publish_tarball

    tarball = publish_tarball(artifact_store, manifest, out, reporter=cli.reporter())
    cli.emit(
        {
            "format": fmt,
            "digest": digest,
            "uri": tarball.uri,
            "bytes": tarball.bytes,
        },
        lambda console: console.print(f"wrote {tarball.uri} ({human_bytes(tarball.bytes)})"),
    )
