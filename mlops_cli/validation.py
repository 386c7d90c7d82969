"""Validate a document against one of the shipped JSON schemas, reporting the first error as one
line that names the source, the key path and, for an unknown key or value, the nearest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops_cli.errors import MlopsError, ValidationError
from mlops_cli.resources import load_schema


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``word``, if any is near enough."""
    match = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.5)
    return match[0] if match else None


def suggestion(word: str, candidates: Iterable[str], *, noun: str = "keys") -> str:
    options = sorted(str(c) for c in candidates)
    near = closest(word, options)
    listed = ", ".join(options)
    return f"did you mean '{near}'? Valid {noun}: {listed}" if near else f"valid {noun}: {listed}"


def key_path(parts: Iterable[Any]) -> str:
    """``['inputs', 0, 'dtype']`` -> ``inputs[0].dtype``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate_document(
    document: Any,
    schema_name: str,
    *,
    source: str,
    error_class: type[ValidationError] = ValidationError,
) -> None:
    """Raise ``error_class`` for the most relevant schema violation of ``document``."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(load_schema(schema_name)).iter_errors(document))
    if error is None:
        return
    path = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {}).keys()
        extra = [key for key in error.instance if key not in allowed]
        bad = str(extra[0]) if extra else "?"
        raise error_class(
            "unknown key",
            source=source,
            key_path=f"{path}.{bad}" if path else bad,
            hint=suggestion(bad, allowed),
        )
    if error.validator == "type" and not path:
        raise error_class("the document must be a mapping of keys to values", source=source)
    if error.validator == "enum" and isinstance(error.instance, str):
        raise error_class(
            f"{error.instance!r} is not allowed",
            source=source,
            key_path=path or None,
            hint=suggestion(error.instance, error.validator_value, noun="values"),
        )
    if error.validator == "required":
        raise error_class(error.message, source=source, key_path=path or None)
    raise error_class(error.message, source=source, key_path=path or None)


def parse_yaml(
    text: str, *, source: str, error_class: type[ValidationError] = ValidationError
) -> Any:
    """Parse YAML; a syntax error is ``error_class`` naming ``source:line:column``."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise error_class(f"malformed YAML: {exc.problem}", source=where) from None
    except yaml.YAMLError as exc:
        raise error_class(f"malformed YAML: {exc}", source=source) from None


def read_yaml_file(path: Path, *, error_class: type[ValidationError], missing: MlopsError) -> Any:
    """Parse a YAML file: ``missing`` when it does not exist, ``error_class`` naming the file
    when it cannot be read, and (through :func:`parse_yaml`) with line and column when its
    syntax is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise missing from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error_class(f"cannot read: {exc}", source=str(path)) from None
    return parse_yaml(text, source=str(path), error_class=error_class)
