"""Turning command-line words into load options: durations (``10s``, ``500ms``), percentages
(``0.5%``), level lists (``1,4,16``) and model lists (``m1,m2`` or ``@FILE``). Pure parsing: what a
target word means (a URL, a registered model, a model on the local Triton) is decided by
:func:`mlops_cli.api.perf.resolve_target`, which reads the registry."""

from __future__ import annotations

import re
from pathlib import Path

from mlops_cli.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, *, option: str) -> float:
    """Seconds from ``10s``, ``500ms``, ``2m``, ``1h`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"{option}: {text!r} is not a duration", hint="write e.g. 10s, 500ms, 2m")
    return float(match[1]) * _UNIT_S[match[2]]


_PERCENTAGE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*%\s*$")


def parse_percentage(text: str, *, option: str) -> float:
    """A fraction from ``0.5%`` (the ``%`` is required: ``1`` could mean 1% or 100%)."""
    match = _PERCENTAGE.match(text)
    value = float(match[1]) / 100 if match else -1.0
    if not 0 <= value <= 1:
        raise UsageError(
            f"{option}: {text!r} is not a percentage from 0% to 100%", hint="write e.g. 0.5%"
        )
    return value


def parse_levels(text: str, *, option: str, integer: bool) -> tuple[float, ...]:
    """``1,4,16`` as numbers, each above zero."""
    levels = []
    for part in text.split(","):
        try:
            value = int(part) if integer else float(part)
        except ValueError:
            value = 0
        if value <= 0:
            kind = "positive whole numbers" if integer else "positive numbers"
            raise UsageError(
                f"{option}: {part.strip()!r} is not valid", hint=f"give {kind}, e.g. 1,4,16"
            )
        levels.append(float(value))
    return tuple(levels)


def parse_models(values: list[str]) -> tuple[str, ...]:
    """Model names from repeated ``--model`` values, each ``m1,m2`` or ``@FILE`` (one a line)."""
    models: list[str] = []
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise UsageError(f"cannot read the model list {path}: {exc.strerror}") from exc
            models += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        else:
            models += [part.strip() for part in value.split(",") if part.strip()]
    return tuple(models)
