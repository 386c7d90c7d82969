"""Typer option aliases shared by several commands, declared once so that every command spells
(and documents) ``--registry``, ``--store``, ``--target`` and the rest the same way.

Global flags (``--json``, ``--quiet``, ``--config``, ``--set``) are the root callback's, in
:mod:`mlops_cli.cli.app`; the aliases here are per command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RegistryOpt = Annotated[
    str | None,
    typer.Option("--registry", help="Registry URI (sqlite:///path or dynamodb://table)."),
]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Artifact store URI.")]
StoreUriOpt = Annotated[
    str | None,
    typer.Option("--store", help="Artifact store URI (file:///path or s3://bucket/prefix)."),
]
PackageStoreOpt = Annotated[
    str | None, typer.Option("--store", help="Artifact store URI (for sha256:<digest>).")
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        help="local, triton, sagemaker-mme, sagemaker-ic or mme-local (default: setting).",
    ),
]
FleetOpt = Annotated[Path | None, typer.Option("--fleet", help="Fleet file of the triton target.")]
EndpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--endpoint", help="Endpoint file of the sagemaker-mme, sagemaker-ic and mme-local targets."
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]
ModelArg = Annotated[str, typer.Argument(help="Model name.")]
TenantArg = Annotated[str, typer.Argument(help="Tenant name.")]
MmeOpt = Annotated[
    bool, typer.Option("--mme", help="mme-local, the SageMaker multi-model endpoint stand-in.")
]
