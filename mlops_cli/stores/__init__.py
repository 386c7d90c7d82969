"""Artifact stores, chosen by URI scheme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops_cli.errors import UsageError
from mlops_cli.stores.base import ArtifactStore, DigestMismatchError, PackageNotFoundError


def _local(uri: str, **options: Any) -> ArtifactStore:
    from mlops_cli.stores.local import LocalStore

    return LocalStore.from_uri(uri)


def _s3(uri: str, **options: Any) -> ArtifactStore:
    from mlops_cli.stores.s3 import S3Store

    return S3Store.from_uri(uri, **options)


STORES: dict[str, Callable[..., ArtifactStore]] = {"file": _local, "s3": _s3}


def open_store(uri: str, **options: Any) -> ArtifactStore:
    """The store for ``uri`` (``file:///path`` or ``s3://bucket/prefix``)."""
    scheme, sep, _ = uri.partition("://")
    factory = STORES.get(scheme) if sep else None
    if factory is None:
        raise UsageError(
            f"unsupported store URI {uri!r}",
            hint=f"registered schemes: {', '.join(f'{s}://' for s in STORES)}",
        )
    return factory(uri, **options)


__all__ = ["STORES", "ArtifactStore", "DigestMismatchError", "PackageNotFoundError", "open_store"]
