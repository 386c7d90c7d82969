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
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.registry import Registry, open_registry
from mlops_cli.registry.base import NewVersion
from mlops_cli.stores import ArtifactStore, open_store

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


# -- ArtifactStore conformance: every test of test_store_contract.py runs once per store -------

STORE_BACKENDS = ("file", "s3")
STORE_BUCKET = "conformance"
STORE_PREFIX = "team"
STORE_PART_SIZE = 5 << 20  # S3's smallest part: a 12 MiB blob goes up in three parts


class StoreTarget(ABC):
    """One store backend as the suite sees it: fresh store objects on one location, and raw
    access to what is stored there (to damage a blob, or to see every object, temporaries and
    unfinished uploads included) that bypasses the store under test."""

    backend: str

    @abstractmethod
    def open(self) -> ArtifactStore:
        """A new store object on the location (its stats start at zero)."""

    @abstractmethod
    def keys(self, folder: str) -> list[str]:
        """Every object under ``folder`` (``blobs/``, ``packages/``, ``quarantine/``), as paths
        relative to the store's root, temporaries included, sorted."""

    @abstractmethod
    def read_raw(self, key: str) -> bytes: ...

    @abstractmethod
    def write_raw(self, key: str, data: bytes) -> None:
        """Replace an object's bytes behind the store's back (bit rot, tampering)."""

    @abstractmethod
    def unfinished_uploads(self) -> list[str]:
        """Writes begun and never finished: temporary files, open multipart uploads."""


class LocalStoreTarget(StoreTarget):
    backend = "file"

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self) -> ArtifactStore:
        return open_store(self.root.as_uri())

    def keys(self, folder: str) -> list[str]:
        base = self.root / folder
        found = base.rglob("*") if base.exists() else iter(())
        return sorted(p.relative_to(self.root).as_posix() for p in found if p.is_file())

    def read_raw(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write_raw(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.chmod(0o644)  # stored blobs are read-only
        path.write_bytes(data)

    def unfinished_uploads(self) -> list[str]:
        return [key for key in self.keys("blobs") if key.rsplit("/", 1)[1].startswith(".")]


class S3StoreTarget(StoreTarget):
    backend = "s3"

    def __init__(self) -> None:
        import boto3

        self.client = boto3.client("s3")
        self.client.create_bucket(Bucket=STORE_BUCKET)

    def open(self) -> ArtifactStore:
        return open_store(f"s3://{STORE_BUCKET}/{STORE_PREFIX}", part_size=STORE_PART_SIZE)

    def keys(self, folder: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=STORE_BUCKET, Prefix=f"{STORE_PREFIX}/{folder}"
        )
        found = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return sorted(key.removeprefix(f"{STORE_PREFIX}/") for key in found)

    def read_raw(self, key: str) -> bytes:
        response = self.client.get_object(Bucket=STORE_BUCKET, Key=f"{STORE_PREFIX}/{key}")
        data: bytes = response["Body"].read()
        return data

    def write_raw(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=STORE_BUCKET, Key=f"{STORE_PREFIX}/{key}", Body=data)

    def unfinished_uploads(self) -> list[str]:
        listing = self.client.list_multipart_uploads(Bucket=STORE_BUCKET)
        return [str(upload["Key"]) for upload in listing.get("Uploads", [])]


@pytest.fixture(params=STORE_BACKENDS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    """An empty store location of the parametrized backend (S3: a bucket on the moto server of
    ``tests/conftest.py``, reset for each test)."""
    if request.param == "file":
        return LocalStoreTarget(tmp_path / "store")
    request.getfixturevalue("aws")  # moto reset, AWS_* variables set
    return S3StoreTarget()
