"""Content-addressed model packages: the manifest and what can go wrong making one.

A package is a manifest listing every file of a model folder (relative path, size, sha256, whether
it is executable) plus where the files came from when that is not a plain folder. Its canonical
JSON encoding (sorted keys, no spaces) is hashed with sha256: that digest is the package id. The
same folder gives the same id on any machine, at any time.

Finding the files is :mod:`mlops_cli.packages.scan`; hashing them into a manifest is
:mod:`mlops_cli.packages.hashing`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from mlops_cli.errors import MlopsError, ValidationError

MEDIA_TYPE = "application/vnd.mlops.package.v1+json"


class PackageError(ValidationError):
    """A model folder cannot be packaged as it is (unsafe or unreadable entries)."""


class FileChangedError(MlopsError):
    """A file changed while it was being packaged or sent; nothing was published."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path} changed while it was being uploaded; nothing was published",
            hint="wait until the file is completely written, then upload again",
        )
        self.path = path


@dataclass(frozen=True)
class FileEntry:
    path: str  # POSIX, relative to the package root
    size: int
    sha256: str
    executable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "executable": self.executable,
        }


@dataclass(frozen=True)
class PackageManifest:
    """The list of files of one package; :attr:`digest` is the package id."""

    name: str
    files: tuple[FileEntry, ...]
    source: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "mediaType": MEDIA_TYPE,
            "name": self.name,
            "files": [entry.to_dict() for entry in self.files],
        }
        if self.source:
            document["source"] = dict(self.source)
        return document

    def to_bytes(self) -> bytes:
        """Canonical encoding: what the digest is computed over and what stores keep."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def blob_digests(self) -> list[str]:
        """Distinct blob digests, in file order."""
        return list(dict.fromkeys(entry.sha256 for entry in self.files))

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(path)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "manifest") -> PackageManifest:
        try:
            document = json.loads(data)
            if document.get("mediaType") != MEDIA_TYPE:
                raise ValueError(f"unknown mediaType {document.get('mediaType')!r}")
            files = tuple(
                FileEntry(
                    path=_safe_relative(item["path"]),
                    size=int(item["size"]),
                    sha256=str(item["sha256"]),
                    executable=bool(item.get("executable", False)),
                )
                for item in document["files"]
            )
            return cls(
                name=str(document["name"]), files=files, source=dict(document.get("source", {}))
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PackageError(f"not a valid package manifest: {exc}", source=source) from None


def _safe_relative(path: str) -> str:
    """Refuse manifest paths that could land outside a folder they are written into."""
    posix = PurePosixPath(path)
    if not path or posix.is_absolute() or ".." in posix.parts or "\\" in path or "\0" in path:
        raise ValueError(f"unsafe path {path!r}")
    return str(posix)
