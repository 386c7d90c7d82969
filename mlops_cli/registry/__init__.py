"""Registries, chosen by URI scheme: ``sqlite:///path`` (embedded default), ``dynamodb://table``."""

from __future__ import annotations

from collections.abc import Callable

from mlops_cli.errors import UsageError
from mlops_cli.registry.base import Registry


def _sqlite(uri: str) -> Registry:
    from mlops_cli.registry.sqlite import SQLiteRegistry

    return SQLiteRegistry.from_uri(uri)


def _dynamodb(uri: str) -> Registry:
    from mlops_cli.registry.dynamodb import DynamoDBRegistry

    return DynamoDBRegistry.from_uri(uri)


REGISTRIES: dict[str, Callable[[str], Registry]] = {"sqlite": _sqlite, "dynamodb": _dynamodb}


def open_registry(uri: str) -> Registry:
    """The registry for ``uri``."""
    scheme, sep, _ = uri.partition("://")
    factory = REGISTRIES.get(scheme) if sep else None
    if factory is None:
        raise UsageError(
            f"unsupported registry URI {uri!r}",
            hint=f"registered schemes: {', '.join(f'{s}://' for s in REGISTRIES)}",
        )
    return factory(uri)


__all__ = ["REGISTRIES", "Registry", "open_registry"]
