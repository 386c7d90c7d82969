"""Find the files of a model folder that go into a package, refusing unsafe entries.

Scanning refuses what must never enter a package: names that are not UTF-8, symlinks that leave
the folder, device files, FIFOs and sockets, and an empty folder. It reads metadata only; each
:class:`ScannedFile` carries the fingerprint (identity, size, times) that the hash cache and the
upload's "unchanged" proof compare against.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mlops_cli.packages.manifest import PackageError

# A file's times are trusted to prove it unchanged only once they are older than this (as in git's
# index): a write that lands within the file system's timestamp granularity must not look unchanged.
RACY_MARGIN_NS = 2_000_000_000
# Never packaged: caches, VCS metadata and the mlops workspace.
DEFAULT_IGNORES = ("__pycache__", "*.pyc", ".git", ".mlops", ".DS_Store", ".ipynb_checkpoints")


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


def unchanged_check(item: ScannedFile) -> Callable[[], bool] | None:
    """A cheap proof that ``item`` still holds the bytes that were hashed: its identity, size,
    mtime and ctime are those seen before hashing. None when the file is too fresh for its
    timestamps to be trusted (then the store hashes the bytes it sends instead)."""
    if time.time_ns() - item.mtime_ns < RACY_MARGIN_NS:
        return None

    def check() -> bool:
        try:
            info = os.stat(item.absolute)
        except OSError:
            return False
        seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        return seen == item.fingerprint

    return check
