"""Check every blob of an artifact store against its name, and move damaged ones aside.

A blob is damaged when its bytes do not hash to the digest it is stored under (bit rot, a
truncated copy, tampering). Uploads trust that a stored blob is intact, so a damaged blob would be
kept forever; :func:`verify_store` finds them, and with ``repair`` moves each to the store's
``quarantine/`` (see :mod:`mlops_cli.stores.base`), after which the next upload of any package
holding it sends it again. Without ``repair`` nothing in the store changes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_cli.errors import NotFoundError
from mlops_cli.progress import SILENT, Reporter, Task, running
from mlops_cli.stores.base import ArtifactStore, DigestMismatchError

READ_CHUNK = 8 << 20
VERIFY_WORKERS = 4


@dataclass(frozen=True)
class DamagedBlob:
    digest: str
    size: int
    actual: str  # what the stored bytes hash to
    quarantined: str | None  # where the blob was moved, relative to the store; None: left


@dataclass(frozen=True)
class StoreVerifyResult:
    store: str
    blobs: int
    bytes: int
    damaged: list[DamagedBlob] = field(default_factory=list)
    repair: bool = False

    @property
    def unrepaired(self) -> list[DamagedBlob]:
        return [blob for blob in self.damaged if blob.quarantined is None]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unrepaired": len(self.unrepaired)}


def verify_store(
    store: ArtifactStore,
    *,
    repair: bool = False,
    reporter: Reporter = SILENT,
    workers: int = VERIFY_WORKERS,
) -> StoreVerifyResult:
    """Read and hash every blob of ``store``; with ``repair``, quarantine the damaged ones.

    Blobs that disappear while the check runs (quarantined by a concurrent reader) are skipped.
    """
    listed = list(store.list_blobs())
    total = sum(size for _, size in listed)
    damaged: list[DamagedBlob] = []
    lock = threading.Lock()
    with running(reporter, f"verifying {len(listed)} blobs", total=total, unit="bytes") as task:

        def check(digest: str, size: int) -> None:
            problem = _check_blob(store, digest, repair=repair, task=task)
            if problem is not None:
                with lock:
                    damaged.append(
                        DamagedBlob(
                            digest=digest,
                            size=size,
                            actual=problem.actual,
                            quarantined=problem.quarantined,
                        )
                    )

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for future in [pool.submit(check, digest, size) for digest, size in listed]:
                future.result()
    damaged.sort(key=lambda blob: blob.digest)
    return StoreVerifyResult(
        store=store.uri, blobs=len(listed), bytes=total, damaged=damaged, repair=repair
    )


def _check_blob(
    store: ArtifactStore, digest: str, *, repair: bool, task: Task
) -> DigestMismatchError | None:
    try:
        with store.open_blob(digest, quarantine_damaged=repair) as reader:
            while chunk := reader.read(READ_CHUNK):
                task.advance(len(chunk))
    except DigestMismatchError as problem:
        return problem
    except NotFoundError:
        return None  # moved aside or removed since the listing
    return None
