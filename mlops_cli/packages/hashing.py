"""Hash scanned files into a package manifest.

Files are read in chunks on a few threads (hashlib releases the GIL); a file whose digest the
hash cache still trusts is not read at all. A file whose size changed between scanning and hashing
is refused: it is being written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlops_cli.packages.hashcache import HashCache
from mlops_cli.packages.manifest import FileChangedError, FileEntry, PackageManifest
from mlops_cli.packages.scan import ScannedFile

HASH_CHUNK = 4 << 20


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
