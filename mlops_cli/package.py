"""Content-addressed model packages.

A package is a manifest listing every file of a model folder (relative path, size, sha256, whether
it is executable) plus where the files came from when that is not a plain folder. Its canonical
JSON encoding (sorted keys, no spaces) is hashed with sha256: that digest is the package id. The
same folder gives the same id on any machine, at any time.

Scanning refuses what must never enter a package: names that are not UTF-8, symlinks that leave
the folder, device files, FIFOs and sockets, and an empty folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_cli.errors import MlopsError, ValidationError
from mlops_cli.hashcache import HashCache

MEDIA_TYPE = "application/vnd.mlops.package.v1+json"
HASH_CHUNK = 4 << 20
# Never packaged: caches, VCS metadata and the mlops workspace.
DEFAULT_IGNORES = ("__pycache__", "*.pyc", ".git", ".mlops", ".DS_Store", ".ipynb_checkpoints")


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


@dataclass(frozen=True)
class ScannedFile:
    """A regular file found in a model folder, before hashing."""

    relative: str
    absolute: Path
    size: int
    executable: bool
    mtime_ns: int
    ctime_ns: int
    device: int
    inode: int

    @property
    def fingerprint(self) -> tuple[int, int, int, int, int]:
        """Changes whenever the file's content may have changed (size, times, identity)."""
        return (self.device, self.inode, self.size, self.mtime_ns, self.ctime_ns)


def _ignored(relative: str, patterns: Iterable[str]) -> bool:
    parts = relative.split("/")
    return any(
        fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts)
        for pattern in patterns
    )


def scan_folder(
    root: Path, *, ignore: Iterable[str] = (), links_within: Path | None = None
) -> list[ScannedFile]:
    """List the regular files under ``root``, sorted by path, refusing unsafe entries.

    Symlinks whose target stays inside ``links_within`` (default: the folder itself) are followed,
    their target's bytes packaged under the link's name; anything else that is not a regular file
    or a folder is an error.
    """
    root = root.resolve()
    boundary = (links_within or root).resolve()
    if not root.is_dir():
        raise PackageError(f"{root} is not a folder")
    patterns = (*DEFAULT_IGNORES, *ignore)
    found: list[ScannedFile] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in sorted([*dirnames, *filenames]):
            path = base / name
            relative = path.relative_to(root).as_posix()
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                raise PackageError(
                    f"file name is not UTF-8: {os.fsencode(relative)!r}",
                    source=str(root),
                    hint="rename the file; package paths must be UTF-8",
                ) from None
            if _ignored(relative, patterns):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                target = path.resolve()
                if not target.is_relative_to(boundary) or not target.exists():
                    raise PackageError(
                        f"symlink {relative} points outside the model folder (to {os.readlink(path)})",
                        source=str(root),
                        hint="copy the file into the folder instead of linking to it",
                    )
                if name in dirnames:
                    raise PackageError(f"symlink {relative} points to a folder", source=str(root))
                info = os.stat(path)
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                kind = "FIFO" if stat.S_ISFIFO(info.st_mode) else "device or socket"
                raise PackageError(f"{relative} is a {kind}, not a regular file", source=str(root))
            found.append(
                ScannedFile(
                    relative=relative,
                    absolute=path,
                    size=info.st_size,
                    executable=bool(info.st_mode & stat.S_IXUSR),
                    mtime_ns=info.st_mtime_ns,
                    ctime_ns=info.st_ctime_ns,
                    device=info.st_dev,
                    inode=info.st_ino,
                )
            )
    if not found:
        raise PackageError(f"{root} holds no files to package")
    found.sort(key=lambda item: item.relative)
    return found


def hash_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks (hashlib releases the GIL: threads run in
    parallel). The size is what was read, so it always matches the digest."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            size += count
            if on_bytes is not None:
                on_bytes(count)
    return digest.hexdigest(), size


def build_manifest(
    name: str,
    files: list[ScannedFile],
    *,
    source: Mapping[str, str] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    cache: HashCache | None = None,
    workers: int = 4,
) -> PackageManifest:
    """Hash every file (in parallel; unchanged files come from ``cache``) into a manifest.

    A file whose size changed between scanning and hashing is refused: it is being written.
    """

    def digest_of(item: ScannedFile) -> str:
        cached = cache.lookup(item) if cache is not None else None
        if cached is not None:
            if on_bytes is not None:
                on_bytes(item.size)
            return cached
        digest, size = hash_file(item.absolute, on_bytes)
        if size != item.size:
            raise FileChangedError(item.relative)
        if cache is not None:
            cache.record(item, digest)
        return digest

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(pool.map(digest_of, files))
    if cache is not None:
        cache.save()
    entries = tuple(
        FileEntry(path=item.relative, size=item.size, sha256=digest, executable=item.executable)
        for item, digest in zip(files, digests, strict=True)
    )
    return PackageManifest(name=name, files=entries, source=dict(source or {}))
