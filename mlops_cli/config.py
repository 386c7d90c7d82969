"""Layered configuration with provenance.

Values flow one way: YAML files, ``MLOPS_*`` environment variables and ``--set`` flags are each
validated against ``schemas/config.schema.json`` on their own (so an error names the layer that
holds the bad value), then merged by precedence into frozen dataclasses:

    flags > MLOPS_* environment > .mlops/config.yaml (searched upward) > user config > defaults

Each effective value remembers where it came from, which ``mlops config show`` prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_cli.errors import ConfigError
from mlops_cli.resources import load_schema
from mlops_cli.validation import parse_yaml, suggestion, validate_document

ENV_PREFIX = "MLOPS_"
WORKSPACE_DIRNAME = ".mlops"
PROJECT_CONFIG_NAME = "config.yaml"
DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class LocalServerSettings:
    """Settings of the embedded local Triton server."""

    http_port: int
    grpc_port: int
    metrics_port: int
    startup_timeout: float
    stop_timeout: float
    log_verbose: int


@dataclass(frozen=True)
class Settings:
    """The effective configuration, and where each dotted key's value came from."""

    workspace: Path
    store: str
    registry: str
    target: str
    local: LocalServerSettings
    sources: Mapping[str, str] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    router: str = ""  # the router `mlops invoke` goes through; "" for none

    def as_flat_dict(self) -> dict[str, Any]:
        """Dotted key -> effective value, for display."""
        flat: dict[str, Any] = {
            "workspace": str(self.workspace),
            "store": self.store,
            "registry": self.registry,
            "target": self.target,
            "router": self.router,
        }
        for name, value in vars(self.local).items():
            flat[f"local.{name}"] = value
        return flat


@dataclass(frozen=True)
class _Layer:
    source: str
    values: dict[str, Any]  # dotted key -> value
    base_dir: Path | None = None  # folder that relative paths in this layer are relative to


def leaf_schemas() -> dict[str, dict[str, Any]]:
    """Dotted key -> the JSON schema of that leaf, for every settable key."""
    leaves: dict[str, dict[str, Any]] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for name, sub in node.get("properties", {}).items():
            key = f"{prefix}{name}"
            if sub.get("type") == "object":
                walk(f"{key}.", sub)
            else:
                leaves[key] = sub

    walk("", load_schema("config"))
    return leaves


def env_var_for(key: str) -> str:
    """``local.http_port`` -> ``MLOPS_LOCAL_HTTP_PORT``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def _validate_nested(values: Mapping[str, Any], source: str) -> None:
    validate_document(values, "config", source=source, error_class=ConfigError)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def _flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _coerce(text: str, schema: Mapping[str, Any], *, source: str, key: str) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise ConfigError(f"expected {kind}, got {text!r}", source=source, key_path=key) from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"expected a boolean, got {text!r}", source=source, key_path=key)
    return text


def load_yaml_file(path: Path) -> dict[str, Any]:
    """Read one YAML config file; malformed YAML is a ConfigError with line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    data = parse_yaml(text, source=str(path), error_class=ConfigError)
    if data is None:
        return {}
    _validate_nested(data, str(path))
    return data  # type: ignore[no-any-return]


def user_config_path(environ: Mapping[str, str]) -> Path:
    """The user-level config file (platformdirs; honours XDG_CONFIG_HOME)."""
    xdg = environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg) / "mlops" / PROJECT_CONFIG_NAME
    from platformdirs import user_config_path as _ucp

    return _ucp("mlops") / PROJECT_CONFIG_NAME


def find_workspace_dir(start: Path) -> Path | None:
    """The nearest ``.mlops/`` folder at or above ``start``."""
    for folder in (start, *start.parents):
        candidate = folder / WORKSPACE_DIRNAME
        if candidate.is_dir():
            return candidate
    return None


def _file_layer(path: Path, label: str) -> _Layer:
    return _Layer(
        source=f"{label} {path}",
        values=_flatten(load_yaml_file(path)),
        base_dir=path.parent.parent if path.parent.name == WORKSPACE_DIRNAME else path.parent,
    )


def _check_leaf(key: str, value: Any, schema: Mapping[str, Any], source: str) -> None:
    """Validate one value from the environment or a flag against its leaf schema.

    The leaves are plain strings and numbers, so this small check covers every keyword they use
    and spares simple commands the cost of importing jsonschema.
    """
    problem = None
    if "enum" in schema and value not in schema["enum"]:
        hint = suggestion(str(value), schema["enum"], noun="values")
        raise ConfigError(f"{value!r} is not allowed", source=source, key_path=key, hint=hint)
    if schema.get("type") == "string" and len(value) < schema.get("minLength", 0):
        problem = f"{value!r} is too short"
    elif schema.get("type") in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problem = f"{value} is less than the minimum of {schema['minimum']}"
        elif "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problem = (
                f"{value} is less than or equal to the minimum of {schema['exclusiveMinimum']}"
            )
        elif "maximum" in schema and value > schema["maximum"]:
            problem = f"{value} is greater than the maximum of {schema['maximum']}"
    if problem:
        raise ConfigError(problem, source=source, key_path=key)


def _env_layer(environ: Mapping[str, str], leaves: Mapping[str, dict[str, Any]]) -> list[_Layer]:
    layers = []
    for key, schema in leaves.items():
        var = env_var_for(key)
        if var in environ:
            source = f"env {var}"
            value = _coerce(environ[var], schema, source=source, key=key)
            _check_leaf(key, value, schema, source)
            layers.append(_Layer(source=source, values={key: value}))
    return layers


def _flag_layers(
    set_pairs: Iterable[str], overrides: Mapping[str, Any], leaves: Mapping[str, dict[str, Any]]
) -> list[_Layer]:
    layers = []
    for pair in set_pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {pair!r}", source="flags")
        if key not in leaves:
            raise ConfigError(
                "unknown key", source="--set", key_path=key, hint=suggestion(key, leaves)
            )
        value = _coerce(text, leaves[key], source="--set", key=key)
        _check_leaf(key, value, leaves[key], "--set")
        layers.append(_Layer(source=f"flag --set {key}", values={key: value}))
    for key, value in overrides.items():
        if value is None:
            continue
        _check_leaf(key, value, leaves[key], "flags")
        layers.append(
            _Layer(source=f"flag --{key.rpartition('.')[2].replace('_', '-')}", values={key: value})
        )
    return layers


def resolve_settings(
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    set_pairs: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge every configuration layer into :class:`Settings`.

    ``config_file`` replaces the upward search for ``.mlops/config.yaml``; ``set_pairs`` are
    ``KEY=VALUE`` strings from ``--set``; ``overrides`` are values of command-specific flags by
    dotted key (``None`` means the flag was not given). Reads files, never writes.
    """
    cwd = (cwd or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    leaves = leaf_schemas()

    layers: list[_Layer] = [
        _Layer(
            source=DEFAULT_SOURCE,
            values={k: s["default"] for k, s in leaves.items() if "default" in s},
        )
    ]
    files: list[Path] = []
    user_file = user_config_path(environ)
    if user_file.is_file():
        layers.append(_file_layer(user_file, "user config"))
        files.append(user_file)
    found_ws = find_workspace_dir(cwd)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError("config file not found", source=str(config_file))
        project_file: Path | None = config_file.resolve()
    else:
        project_file = found_ws / PROJECT_CONFIG_NAME if found_ws else None
    if project_file is not None and project_file.is_file():
        layers.append(_file_layer(project_file, "project config"))
        files.append(project_file)
    layers.extend(_env_layer(environ, leaves))
    layers.extend(_flag_layers(set_pairs, overrides or {}, leaves))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.values.items():
            if key == "workspace":
                base = layer.base_dir or cwd
                value = str((base / Path(value).expanduser()).resolve())
            values[key] = value
            sources[key] = layer.source
    if "workspace" not in values:
        values["workspace"] = str(found_ws if found_ws else cwd / WORKSPACE_DIRNAME)
        sources["workspace"] = "default (nearest .mlops/ folder)" if found_ws else DEFAULT_SOURCE
    workspace = Path(values["workspace"])
    for key, value in values.items():
        if isinstance(value, str) and "{workspace}" in value:
            values[key] = value.replace("{workspace}", str(workspace))

    local = LocalServerSettings(
        **{k.partition(".")[2]: v for k, v in values.items() if k.startswith("local.")}
    )
    return Settings(
        workspace=workspace,
        store=values["store"],
        registry=values["registry"],
        target=values["target"],
        router=values.get("router", ""),
        local=local,
        sources=sources,
        files=tuple(files),
    )
