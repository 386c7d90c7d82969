"""Files shipped with mlops: JSON schemas and code templates.

In a wheel, ``schemas/`` and ``templates/`` are force-included as ``mlops_cli/schemas`` and
``mlops_cli/templates`` and read with :mod:`importlib.resources`. In a source checkout (editable
install, or tests run from the tree) they sit at the repository's top level instead.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from mlops_cli.errors import NotFoundError


def _data_dir(name: str) -> Traversable:
    packaged = resources.files("mlops_cli").joinpath(name)
    if packaged.is_dir():
        return packaged
    in_tree = Path(__file__).resolve().parent.parent / name
    if in_tree.is_dir():
        return in_tree
    raise NotFoundError(
        f"mlops data folder '{name}' is missing from this installation",
        hint="reinstall mlops-cli",
    )


def schemas_dir() -> Traversable:
    """The folder holding the JSON schemas."""
    return _data_dir("schemas")


def templates_dir() -> Traversable:
    """The folder holding the model code templates."""
    return _data_dir("templates")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>.schema.json`` as a dict (cached: schemas never change at run time)."""
    entry = schemas_dir().joinpath(f"{name}.schema.json")
    if not entry.is_file():
        raise NotFoundError(f"no schema named '{name}'")
    schema: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
    return schema
