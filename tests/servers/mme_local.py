"""An mme-local server for tests: started as `mlops local up --mme` does, in a workspace of its
own, reading S3 and the SageMaker control plane from the moto server, stopped by its pid; and the
environment that points mlops (workspace, registry, store) and boto3's sagemaker-runtime at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@contextmanager
def running_mme_local(moto_server: Any, workdir: Path) -> Iterator[Any]:
    """A started mme-local (a ``LocalMME``) whose workspace is ``workdir``; stopped on exit."""
    from mlops_cli.local.mme import LocalMME
    from mlops_cli.workspace import Workspace

    manager = LocalMME(Workspace(workdir))
    manager.up(environ={**os.environ, **moto_server.env()})
    try:
        yield manager
    finally:
        manager.down()


def point_at(manager: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mlops' workspace = the server's, registry and store in ``tmp_path``; boto3's runtime
    calls to the server."""
    monkeypatch.setenv("MLOPS_WORKSPACE", str(manager.workspace.root))
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", manager.url())
