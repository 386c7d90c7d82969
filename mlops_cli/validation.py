"""Read YAML documents and validate them against the shipped JSON schemas.

The one YAML reader (:func:`read_yaml_file`, for ``mlops.yaml``, fleet files and endpoint files)
bounds what it parses: the file's size before reading it (:data:`MAX_YAML_BYTES`), how many
values its aliases expand to and how deeply it nests (:data:`MAX_YAML_NODES`,
:data:`MAX_YAML_DEPTH`, so a "billion laughs" document is refused before it is built), and what an
error line quotes of a value (:func:`excerpt`).

Schema violations are reported as :class:`SchemaProblem` records, every one of them; raising
callers name the most relevant first, with the key path and, for an unknown key or value, the
nearest valid one. ``pattern`` keeps its JSON Schema (ECMA-262) meaning: ``$`` is the end of the
string, not "the end or before a final newline" as in Python's :mod:`re`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mlops_cli.errors import MlopsError, ValidationError
from mlops_cli.resources import load_schema

MAX_YAML_BYTES = 256 * 1024
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
EXCERPT_CHARS = 40
_MAX_SUGGESTED_WORD = 100  # difflib is quadratic: no suggestion for longer words


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, cut to about ``limit`` characters with the full length named."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``word``, if any is near enough."""
    if len(word) > _MAX_SUGGESTED_WORD:
        return None
    match = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.5)
    return match[0] if match else None


def suggestion(word: str, candidates: Iterable[str], *, noun: str = "keys") -> str:
    options = sorted(str(c) for c in candidates)
    near = closest(word, options)
    listed = ", ".join(options)
    return f"did you mean '{near}'? Valid {noun}: {listed}" if near else f"valid {noun}: {listed}"


def key_path(parts: Iterable[Any]) -> str:
    """``['inputs', 0, 'dtype']`` -> ``inputs[0].dtype`` (long keys cut to an excerpt)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part) if len(str(part)) <= EXCERPT_CHARS else excerpt(str(part))
            text += f".{name}" if text else name
    return text


# -- schemas -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaProblem:
    """One violation: where (a key path, empty for the whole document), what, and what to do."""

    key_path: str
    message: str
    hint: str | None = None


def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled so that ``$`` outside a character class means the end of the string
    (ECMA-262, what JSON Schema specifies), as ``\\Z`` does in Python."""
    out: list[str] = []
    in_class = escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            out.append(r"\Z")
            continue
        out.append(char)
    return _compiled("".join(out))


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError as SchemaViolation

    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield SchemaViolation(f"{excerpt(instance)} does not match {pattern!r}")


@cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    return extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, validators={"pattern": _pattern_keyword}
    )


def _problems_of(error: Any) -> list[SchemaProblem]:
    """One jsonschema error as problems (an object with several unknown keys gives one each)."""
    from jsonschema.exceptions import best_match

    if error.context and error.validator in ("anyOf", "oneOf"):
        inner = best_match(error.context)
        if inner is not None:
            return _problems_of(inner)
    path = key_path(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = error.schema.get("properties", {}).keys()
        return [
            SchemaProblem(
                f"{path}.{key_path([key])}" if path else key_path([key]),
                "unknown key",
                suggestion(str(key), allowed),
            )
            for key in instance
            if key not in allowed
        ] or [SchemaProblem(path, "unknown key")]
    if error.validator == "type" and not path:
        return [SchemaProblem("", "the document must be a mapping of keys to values")]
    if error.validator == "enum" and isinstance(instance, str):
        hint = suggestion(instance, error.validator_value, noun="values")
        return [SchemaProblem(path, f"{excerpt(instance)} is not allowed", hint)]
    if error.validator == "maxLength" and isinstance(instance, str):
        message = (
            f"is {len(instance)} characters long, more than the {error.validator_value} allowed"
        )
        return [SchemaProblem(path, message)]
    if error.validator == "pattern":
        return [SchemaProblem(path, error.message, error.schema.get("description"))]
    message = str(error.message)
    whole = repr(instance)
    if len(whole) > EXCERPT_CHARS and message.startswith(whole):
        message = excerpt(instance) + message[len(whole) :]
    elif len(message) > 4 * EXCERPT_CHARS:
        message = f"{excerpt(instance)} fails the schema's '{error.validator}' rule"
    return [SchemaProblem(path, message)]


def schema_problems(document: Any, schema_name: str) -> list[SchemaProblem]:
    """Every violation of the shipped schema ``schema_name``, the most relevant first."""
    from jsonschema.exceptions import best_match

    errors = list(_validator_class()(load_schema(schema_name)).iter_errors(document))
    if not errors:
        return []
    first = best_match(errors)
    ordered = [first, *(error for error in errors if error is not first)]
    return [problem for error in ordered for problem in _problems_of(error)]


def raise_first(
    problems: list[SchemaProblem], *, source: str, error_class: type[ValidationError]
) -> None:
    """Raise ``error_class`` for the first problem, counting the others; nothing when none."""
    if not problems:
        return
    first = problems[0]
    more = (
        f" (and {len(problems) - 1} more; `mlops validate` lists them)" if len(problems) > 1 else ""
    )
    raise error_class(
        first.message + more, source=source, key_path=first.key_path or None, hint=first.hint
    )


def validate_document(
    document: Any,
    schema_name: str,
    *,
    source: str,
    error_class: type[ValidationError] = ValidationError,
) -> None:
    """Raise ``error_class`` for the most relevant schema violation of ``document``."""
    raise_first(schema_problems(document, schema_name), source=source, error_class=error_class)


# -- YAML --------------------------------------------------------------------------------------


def _loader_class() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_expansion(root: Any, *, source: str, error_class: type[ValidationError]) -> None:
    """Refuse a node graph whose aliases expand past :data:`MAX_YAML_NODES` values, that nests
    deeper than :data:`MAX_YAML_DEPTH`, or that contains itself. Linear in the distinct nodes."""
    import yaml

    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk: (node, children visited?).
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key], depths[key] = 1, 0
            continue
        children: list[Any] = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            depths[key] = 1 + max((depths[id(child)] for child in children), default=0)
            if sizes[key] > MAX_YAML_NODES:
                raise error_class(
                    f"the document expands to more than {MAX_YAML_NODES} values "
                    "(aliases repeat their anchor's values)",
                    source=source,
                    hint="write the values out, or remove the repeated aliases",
                )
            if depths[key] > MAX_YAML_DEPTH:
                raise error_class(
                    f"the document nests deeper than {MAX_YAML_DEPTH} levels", source=source
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise error_class("an alias refers to a value that contains it", source=source)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def parse_yaml(
    text: str, *, source: str, error_class: type[ValidationError] = ValidationError
) -> Any:
    """Parse YAML safely and within bounds; a syntax error is ``error_class`` naming
    ``source:line:column``."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise _too_big(len(text), source=source, error_class=error_class)
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, source=source, error_class=error_class)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise error_class(f"malformed YAML: {exc.problem}", source=where) from None
    except yaml.YAMLError as exc:
        raise error_class(f"malformed YAML: {excerpt(str(exc), 200)}", source=source) from None
    except RecursionError:
        raise error_class(
            f"the document nests deeper than {MAX_YAML_DEPTH} levels", source=source
        ) from None
    finally:
        loader.dispose()


def _too_big(size: int, *, source: str, error_class: type[ValidationError]) -> ValidationError:
    return error_class(
        f"the file is {size} bytes, more than the {MAX_YAML_BYTES} allowed",
        source=source,
        hint="keep long text and data in files next to it, not in the YAML",
    )


def read_yaml_file(path: Path, *, error_class: type[ValidationError], missing: MlopsError) -> Any:
    """Parse a YAML file: ``missing`` when it does not exist, ``error_class`` naming the file
    when it is too large or cannot be read, and (through :func:`parse_yaml`) with line and
    column when its syntax is wrong. At most :data:`MAX_YAML_BYTES` + 1 bytes are ever read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)
            if len(data) > MAX_YAML_BYTES:
                size = max(len(data), path.stat().st_size)
                raise _too_big(size, source=str(path), error_class=error_class)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise missing from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error_class(f"cannot read: {exc}", source=str(path)) from None
    return parse_yaml(text, source=str(path), error_class=error_class)
