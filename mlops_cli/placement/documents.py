"""The planner's documents, parsed and checked: a models file (items to plan offline) and a plan
written by ``mlops placement plan --json`` (the placement to rebalance). Pure: the caller reads
the file (within :data:`MAX_DOCUMENT_BYTES`) and hands over the parsed value.

A models file is ``{"models": [{"name", "version", "memory_bytes", "replicas"}, ...]}``, with
optional ``gpu_memory_bytes`` and ``labels`` (server labels the model requires, e.g.
``{"zone": "a"}``), at most :data:`MAX_MODELS` entries. Every entry is checked by hand, not by a
JSON schema, so that a million entries take a second; an error names the source and the entry
(``models[12].memory_bytes``) and, for an unknown key, the nearest valid one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlops_cli.errors import ValidationError
from mlops_cli.placement.records import Item
from mlops_cli.validation import excerpt, suggestion

MAX_MODELS = 1_000_000
MAX_DOCUMENT_BYTES = 256 * 2**20
MODEL_KEYS = frozenset(
    {"name", "version", "memory_bytes", "replicas", "gpu_memory_bytes", "labels"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SERVER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class PlacementFileError(ValidationError):
    """A models file or plan file that is not valid."""


def items_from_document(document: Any, *, source: str) -> list[Item]:
    """The items a models file lists, each checked; duplicates of ``name@version`` refused."""
    entries = _field(document, "models", list, source=source, expected="a list of models")
    if len(entries) > MAX_MODELS:
        raise PlacementFileError(
            f"{len(entries):,} models, more than the {MAX_MODELS:,} allowed",
            source=source,
            key_path="models",
            hint="split the file and plan each part on its own servers",
        )
    items: list[Item] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        item = _item(entry, source=source, where=f"models[{index}]")
        if item.key in seen:
            raise PlacementFileError(
                f"{item.key} is listed twice (also models[{seen[item.key]}])",
                source=source,
                key_path=f"models[{index}]",
            )
        seen[item.key] = index
        items.append(item)
    return items


def _item(entry: Any, *, source: str, where: str) -> Item:
    if not isinstance(entry, dict):
        raise PlacementFileError("must be an object", source=source, key_path=where)
    unknown = sorted(set(entry) - MODEL_KEYS, key=str)
    if unknown:
        raise PlacementFileError(
            f"unknown key {excerpt(unknown[0])}",
            source=source,
            key_path=where,
            hint=suggestion(str(unknown[0]), MODEL_KEYS),
        )
    for key in ("name", "version", "memory_bytes"):
        if key not in entry:
            raise PlacementFileError(f"{key} is missing", source=source, key_path=where)
    name, version = entry["name"], entry["version"]
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise PlacementFileError(
            f"{excerpt(name)} is not a model name (letters, digits, . _ -)",
            source=source,
            key_path=f"{where}.name",
        )
    if not (_whole(version) and version >= 1) and not (
        isinstance(version, str) and _NAME.fullmatch(version)
    ):
        raise PlacementFileError(
            f"{excerpt(version)} is not a version (a number from 1, or a name)",
            source=source,
            key_path=f"{where}.version",
        )
    memory = _count(entry, "memory_bytes", 1, source=source, where=where)
    gpu = _count(entry, "gpu_memory_bytes", 0, source=source, where=where, default=0)
    replicas = _count(entry, "replicas", 1, source=source, where=where, default=1)
    labels = entry.get("labels", {})
    if not (
        isinstance(labels, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise PlacementFileError(
            "must map label names to strings", source=source, key_path=f"{where}.labels"
        )
    return Item(
        model=name,
        version=version,
        memory_mb=memory / 2**20,
        gpu_memory_mb=gpu / 2**20,
        device="gpu" if gpu else "cpu",
        replicas=replicas,
        labels=labels,
    )


def _count(
    entry: Mapping[str, Any], key: str, least: int, *, source: str, where: str, default: int = -1
) -> int:
    value = entry.get(key, default)
    if not _whole(value) or value < least:
        raise PlacementFileError(
            f"{excerpt(value)} is not a whole number of at least {least}",
            source=source,
            key_path=f"{where}.{key}",
        )
    return int(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def assignments_from_document(document: Any, *, source: str) -> dict[str, tuple[str, ...]]:
    """The assignments of a plan file (the ``--json`` output of ``mlops placement plan``)."""
    found = _field(document, "assignments", dict, source=source, expected="an object")
    if len(found) > MAX_MODELS:
        raise PlacementFileError(
            f"{len(found):,} models, more than the {MAX_MODELS:,} allowed",
            source=source,
            key_path="assignments",
        )
    assignments: dict[str, tuple[str, ...]] = {}
    for key, servers in found.items():
        model, at, version = str(key).partition("@")
        if not (at and _NAME.fullmatch(model) and _NAME.fullmatch(version)):
            raise PlacementFileError(
                f"{excerpt(key)} is not MODEL@VERSION", source=source, key_path="assignments"
            )
        if not (
            isinstance(servers, list)
            and all(isinstance(s, str) and _SERVER.fullmatch(s) for s in servers)
            and len(set(servers)) == len(servers)
        ):
            raise PlacementFileError(
                "must be a list of distinct server names",
                source=source,
                key_path=f"assignments.{key}",
            )
        assignments[key] = tuple(servers)
    return assignments


def _field(document: Any, key: str, kind: type, *, source: str, expected: str) -> Any:
    if not isinstance(document, dict):
        raise PlacementFileError(f"must be an object with {key!r}", source=source)
    if key not in document:
        raise PlacementFileError(f"{key!r} is missing", source=source)
    value = document[key]
    if not isinstance(value, kind):
        raise PlacementFileError(f"must be {expected}", source=source, key_path=key)
    return value


__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_MODELS",
    "PlacementFileError",
    "assignments_from_document",
    "items_from_document",
]
