"""The name a registered model version is served under: ``<model>-v<version>``.

Each registered version is its own model on a server (a Triton model, a SageMaker ``TargetModel``
tarball ``<model>-v<version>.tar.gz``), so two versions of one model, each with its own config,
serve side by side during a cut-over. This module is the one place that spells and reads that name;
a name it did not give parses to None, so a server's other models are never mistaken for ours.
"""

from __future__ import annotations

import re

_VERSIONED = re.compile(r"^(?P<model>.+)-v(?P<version>[0-9]+)$")


def versioned_name(model: str, version: int) -> str:
    """``("answer", 2)`` -> ``"answer-v2"``."""
    return f"{model}-v{version}"


def tarball_name(model: str, version: int) -> str:
    """The SageMaker ``TargetModel`` of a version: ``answer-v2.tar.gz``."""
    return f"{versioned_name(model, version)}.tar.gz"


def parse_versioned_name(name: str) -> tuple[str, int] | None:
    """``"answer-v2"`` -> ``("answer", 2)``; None for a name :func:`versioned_name` did not give."""
    match = _VERSIONED.fullmatch(name)
    return (match.group("model"), int(match.group("version"))) if match else None


__all__ = ["parse_versioned_name", "tarball_name", "versioned_name"]
