"""Who is calling: API keys, stored hashed, mapped to tenants.

A keys file (YAML or JSON, read with the project's bounded loader) holds no key, only the
SHA-256 of each key and the tenant it stands for::

    keys:
      - tenant: acme
        sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8

``mlops router key create TENANT --keys-file FILE`` makes a key (256 random bits, shown once)
and appends its hash. Keys are random, so one SHA-256 is enough (no salt or stretching is needed
for a secret that cannot be guessed); a lookup is one hash and one dictionary read.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_cli.errors import UsageError, ValidationError
from mlops_cli.registry.rules import RegistryNameError, check_name
from mlops_cli.validation import parse_yaml, read_yaml_file

KEY_PREFIX = "mlk_"
_HEX = frozenset("0123456789abcdef")


class KeysFileError(ValidationError):
    """A keys file that cannot be used."""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Keys:
    """digest -> tenant."""

    tenants: dict[str, str]

    def tenant_of(self, key: str) -> str | None:
        return self.tenants.get(key_digest(key))


def _entries(document: Any, source: str) -> list[dict[str, Any]]:
    if document is None:
        return []
    if not isinstance(document, dict) or set(document) - {"keys"}:
        raise KeysFileError("a keys file is a mapping with one key, `keys`", source=source)
    entries = document.get("keys") or []
    if not isinstance(entries, list):
        raise KeysFileError("`keys` must be a list", source=source)
    return entries


def read_keys(path: Path) -> Keys:
    """The keys of ``path``; KeysFileError naming the file and the entry for anything wrong."""
    source = str(path)
    document = read_yaml_file(
        path,
        error_class=KeysFileError,
        missing=UsageError(f"keys file {path} does not exist", hint="mlops router key create"),
    )
    tenants: dict[str, str] = {}
    for index, entry in enumerate(_entries(document, source)):
        where = f"{source}: keys[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"tenant", "sha256"}:
            raise KeysFileError("each entry has exactly `tenant` and `sha256`", source=where)
        tenant, digest = str(entry["tenant"]), str(entry["sha256"]).lower()
        try:
            check_name("tenant", tenant)
        except RegistryNameError as exc:
            raise KeysFileError(str(exc), source=where) from None
        if len(digest) != 64 or set(digest) - _HEX:
            raise KeysFileError("`sha256` must be 64 hex digits (the key's SHA-256)", source=where)
        if digest in tenants:
            raise KeysFileError("the same key is listed twice", source=where)
        tenants[digest] = tenant
    return Keys(tenants)


def create_key(path: Path, tenant: str) -> str:
    """A new key for ``tenant``, its hash appended to ``path`` (created when absent, written
    whole then renamed); the key itself is returned and stored nowhere."""
    check_name("tenant", tenant)
    entries: list[dict[str, Any]] = []
    if path.exists():
        read_keys(path)  # refuse to add to a file that is not valid
        text = path.read_text(encoding="utf-8")
        entries = _entries(parse_yaml(text, source=str(path), error_class=KeysFileError), str(path))
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entries.append({"tenant": tenant, "sha256": key_digest(key)})
    import yaml

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(yaml.safe_dump({"keys": entries}, sort_keys=False), encoding="utf-8")
    os.chmod(temporary, 0o600)
    temporary.replace(path)
    return key
