"""A cache of file digests keyed by each file's identity and change times.

Hashing a large model is the slowest part of uploading it again. The cache keeps, per absolute
path, the fingerprint (device, inode, size, mtime, ctime) and the sha256 seen last time; a file
whose fingerprint is unchanged is not read again. As in git's index, an entry is only recorded
when the file's times are older than the hashing by a safety margin, so a write that lands within
the file system's timestamp granularity can never be mistaken for "unchanged".
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from mlops_cli.packages.scan import RACY_MARGIN_NS, ScannedFile

MAX_ENTRIES = 100_000


class HashCache:
    """Thread-safe; persisted as one JSON file, rewritten atomically by :meth:`save`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        try:
            loaded = json.loads(path.read_text())
            self._entries: dict[str, list[object]] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self._entries = {}

    def lookup(self, item: ScannedFile) -> str | None:
        with self._lock:
            entry = self._entries.get(str(item.absolute))
        if entry is None or entry[:-1] != list(item.fingerprint):
            return None
        digest = entry[-1]
        return digest if isinstance(digest, str) else None

    def record(self, item: ScannedFile, digest: str) -> None:
        if time.time_ns() - item.mtime_ns < RACY_MARGIN_NS:
            return  # too fresh to trust its timestamps
        with self._lock:
            self._entries[str(item.absolute)] = [*item.fingerprint, digest]
            self._dirty = True

    def save(self) -> None:
        from mlops_cli.workspace import write_atomic

        with self._lock:
            if not self._dirty:
                return
            if len(self._entries) > MAX_ENTRIES:
                keep = list(self._entries.items())[-MAX_ENTRIES:]
                self._entries = dict(keep)
            data = json.dumps(self._entries, separators=(",", ":")).encode()
            self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, data)
        except OSError:
            pass  # a cache that cannot be written only costs time
