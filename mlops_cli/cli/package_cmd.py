"""`mlops package`: read a stored package back (show, download, render for a server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.options import PackageStoreOpt
from mlops_cli.cli.render_helpers import human_bytes, short

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Inspect, download and render stored packages.", no_args_is_help=True)

PackageArg = Annotated[
    str, typer.Argument(help="Package URI printed by upload, or sha256:<digest>.")
]


@app.command("show")
def show(ctx: typer.Context, package: PackageArg, store: PackageStoreOpt = None) -> int:
    """Print a package's manifest (files, sizes, digests), verified."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    listing = api.show_package(
        ref=package, settings=cli.settings({"store": store}), reporter=cli.reporter()
    )
    manifest = listing.manifest

    def human(console: Console) -> None:
        console.print(
            f"{manifest.name} {short(listing.digest)}  {len(manifest.files)} files, {human_bytes(manifest.total_bytes)}"
        )
        for entry in manifest.files:
            console.print(f"  {human_bytes(entry.size):>10}  {entry.sha256[:12]}  {entry.path}")

    return cli.emit(listing, human)


@app.command("download")
def download(
    ctx: typer.Context,
    package: PackageArg,
    dest: Annotated[Path, typer.Argument(help="Folder to write the files into.")],
    store: PackageStoreOpt = None,
) -> int:
    """Write a package's files into DEST, each verified against its sha256."""
    from mlops_cli import api

    cli: CliContext = ctx.obj
    result = api.download(
        ref=package, dest=dest, settings=cli.settings({"store": store}), reporter=cli.reporter()
    )
    return cli.emit(
        result,
        lambda console: console.print(f"wrote {len(result.manifest.files)} files to {dest}"),
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
    store: PackageStoreOpt = None,
) -> int:
    """Render a package as a Triton model repository entry or a SageMaker model.tar.gz."""
    from mlops_cli import api
    from mlops_cli.errors import UsageError

    cli: CliContext = ctx.obj
    if fmt not in ("triton", "sagemaker"):
        raise UsageError(
            f"unknown format {fmt!r}", hint="use --format triton or --format sagemaker"
        )
    if device not in (None, "gpu", "cpu"):
        raise UsageError(f"unknown device {device!r}", hint="use --device gpu or --device cpu")
    result = api.render(
        ref=package,
        out=out,
        settings=cli.settings({"store": store}),
        format="triton" if fmt == "triton" else "sagemaker",
        version=version,
        device="gpu" if device == "gpu" else "cpu" if device == "cpu" else None,
        reporter=cli.reporter(),
    )

    def human(console: Console) -> None:
        if result.format == "triton":
            console.print(f"wrote {result.path}/{version} and {result.path}/config.pbtxt")
        else:
            console.print(f"wrote {result.uri} ({human_bytes(result.bytes or 0)})")

    return cli.emit(result, human)
