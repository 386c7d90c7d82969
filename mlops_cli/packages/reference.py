"""The package reference: where a package's manifest lives, written and read in one place.

A stored package is named ``<store-uri>/packages/sha256/<hex>.json`` (what ``mlops upload``
prints and the registry records); ``sha256:<hex>`` (or the bare hex) names one in the configured
store. :func:`manifest_key` is the store layout, :meth:`PackageRef.uri` the full reference and
:meth:`PackageRef.parse` its inverse, so that no other module formats or parses the pattern.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mlops_cli.errors import UsageError

_REFERENCE = re.compile(
    r"(?:(?P<store>.+)/packages/sha256/)?(?:sha256:)?(?P<hex>[0-9a-f]{64})(?:\.json)?"
)


def manifest_key(digest: str) -> str:
    """Where a store keeps the manifest of package ``digest``, relative to its root."""
    return f"packages/sha256/{digest}.json"


class PackageRef(NamedTuple):
    """A package: the store holding it (None: the configured one) and its digest."""

    store: str | None
    digest: str

    @property
    def uri(self) -> str:
        """``<store-uri>/packages/sha256/<hex>.json``; ``sha256:<hex>`` without a store."""
        if self.store is None:
            return f"sha256:{self.digest}"
        return f"{self.store.rstrip('/')}/{manifest_key(self.digest)}"

    @classmethod
    def parse(cls, ref: str) -> PackageRef:
        """``<store-uri>/packages/sha256/<hex>.json``, ``sha256:<hex>`` or ``<hex>``."""
        match = _REFERENCE.fullmatch(ref)
        if match is None:
            raise UsageError(
                f"{ref!r} is neither a model folder nor a package reference",
                hint="give a folder holding mlops.yaml, the uri printed by `mlops upload`, or sha256:<digest> with --store",
            )
        return cls(match.group("store"), match.group("hex"))
