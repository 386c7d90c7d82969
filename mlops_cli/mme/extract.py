"""Extract a ``model.tar.gz`` without letting it write outside its folder.

Every member is checked before anything is written: absolute names, ``..`` components, links
that point outside the folder, devices and FIFOs refuse the whole archive. The archive is then
extracted (with the standard ``data`` filter as a second guard) into a temporary sibling folder
that is renamed into place, so a refused or broken archive leaves nothing behind.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from mlops_cli.errors import MlopsError


class UnsafeArchiveError(MlopsError, ValueError):
    """An archive member would land outside the extraction folder, or is not a plain file."""


def _inside(path: str) -> bool:
    normal = posixpath.normpath(path)
    return not (normal.startswith("/") or normal == ".." or normal.startswith("../"))


def check_members(archive: tarfile.TarFile, *, what: str) -> int:
    """Refuse unsafe members; return the total size of the files."""
    total = 0
    for member in archive.getmembers():
        name = member.name
        if name.startswith("/") or not _inside(name) or ".." in name.split("/"):
            raise UnsafeArchiveError(f"{what}: member {name!r} leaves the archive's folder")
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            if member.linkname.startswith("/") or not _inside(
                posixpath.join(base, member.linkname)
            ):
                raise UnsafeArchiveError(
                    f"{what}: link {name!r} -> {member.linkname!r} points outside the archive"
                )
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{what}: member {name!r} is a device or FIFO")
        total += member.size if member.isfile() else 0
    return total


def extract_tarball(archive_path: Path, destination: Path, *, what: str) -> int:
    """Extract ``archive_path`` (tar, optionally gzip) into ``destination`` (which must not
    exist); return the extracted bytes. Raises :class:`UnsafeArchiveError` for a bad member or a
    corrupt archive, leaving nothing."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}."))
    try:
        try:
            with tarfile.open(archive_path, "r:*") as archive:
                total = check_members(archive, what=what)
                archive.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UnsafeArchiveError(f"{what}: not a readable tar.gz archive ({exc})") from None
        staging.replace(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return total
