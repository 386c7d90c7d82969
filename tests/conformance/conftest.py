"""Fixtures for the Registry conformance suite: every test here runs once per backend.

``registry_target`` says where a backend's registry lives (its URI, and the environment a child
process needs to reach it); ``registry`` is that registry, opened through
:func:`mlops_cli.registry.open_registry` and initialised. The DynamoDB backend runs against the
real moto server of ``tests/conftest.py`` (reset per test, DynamoDB requests serialised by the
launcher so that moto's transactions are as isolated as DynamoDB's), with a table of its own per
test.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.registry import Registry, open_registry
from mlops_cli.registry.base import NewVersion

BACKENDS = ("sqlite", "dynamodb")


@dataclass(frozen=True)
class RegistryTarget:
    """One backend's registry: its URI, and the environment variables a child process needs."""

    backend: str
    uri: str
    env: dict[str, str] = field(default_factory=dict)

    def open(self) -> Registry:
        registry = open_registry(self.uri)
        registry.init()
        return registry


def make_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> RegistryTarget:
    """A fresh, empty registry location for ``backend``."""
    if backend == "sqlite":
        return RegistryTarget("sqlite", f"sqlite:///{tmp_path / 'registry.db'}")
    server = request.getfixturevalue("aws")  # moto reset, AWS_* variables set
    table = f"conformance-{uuid.uuid4().hex[:12]}"
    return RegistryTarget("dynamodb", f"dynamodb://{table}", dict(server.env()))


@pytest.fixture(params=BACKENDS)
def registry_target(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryTarget:
    return make_target(request.param, request, tmp_path)


@pytest.fixture
def registry(registry_target: RegistryTarget) -> Registry:
    """An initialised, empty registry of the parametrized backend."""
    return registry_target.open()


def package(label: str, **fields: Any) -> NewVersion:
    """The package named ``label``: a stable 64-hex digest and a URI derived from it."""
    digest = hashlib.sha256(label.encode()).hexdigest()
    return NewVersion(
        package_digest=digest, package_uri=f"s3://models/packages/sha256/{digest}.tar", **fields
    )


def register(registry: Registry, model: str, *labels: str) -> list[int]:
    """Register one package per label; the version numbers, in order."""
    return [registry.register_version(model, package(label)).version.version for label in labels]


def snapshot(registry: Registry) -> dict[str, Any]:
    """Everything the registry shows through its read API (to check a call changed nothing)."""
    models = registry.list_models()
    return {
        "models": [m.to_dict() for m in models],
        "versions": {m.name: [v.to_dict() for v in registry.list_versions(m.name)] for m in models},
        "aliases": {m.name: [a.to_dict() for a in registry.list_aliases(m.name)] for m in models},
        "routes": [r.to_dict() for r in registry.list_routes()],
        "deployments": registry.list_deployments(),
    }
