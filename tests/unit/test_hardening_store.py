"""The file store under stress (issue 12, items 5 and 6): a file changed during its upload is
never published, a damaged blob is moved aside on read and sent again by the next upload,
`mlops store verify [--repair]` finds and quarantines damage, and the rich progress display
runs several tasks in one live display."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.errors import LiveError

from mlops_cli.cli.context import CliContext
from mlops_cli.cli.rich_progress import RichReporter
from mlops_cli.packages.download import download_package
from mlops_cli.packages.manifest import FileChangedError
from mlops_cli.packages.upload import upload
from mlops_cli.stores.base import DigestMismatchError, blob_key
from mlops_cli.stores.local import LocalStore
from mlops_cli.stores.verify import verify_store
from tests.cli import error_line, run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

MiB = 1 << 20
OLD_DATE = 1_000_000_000  # 2001: far older than any "recently written" margin


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    (folder / "weights" / "big.bin").write_bytes(os.urandom(20 * MiB))
    return folder


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(store: LocalStore, folder: str) -> list[Path]:
    root = store.root / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


class _Task:
    def __init__(self, reporter: RewriteMidway) -> None:
        self.reporter = reporter

    def advance(self, amount: int = 1) -> None:
        self.reporter.progressed(amount)

    def update(self, description: str) -> None:
        pass


class RewriteMidway:
    """A progress Reporter that rewrites ``path`` in place (same size, new bytes) the first
    time a chunk of it has been read: the rest of the upload reads the new content. Keyed on
    progress, so the tear is certain, not a race."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.new_content = os.urandom(path.stat().st_size)
        self._lock = threading.Lock()
        self.done = False

    def progressed(self, amount: int) -> None:
        with self._lock:
            if self.done or amount < MiB:  # only the big file advances by a MiB or more
                return
            self.done = True
            with open(self.path, "r+b") as handle:
                handle.write(self.new_content)

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> _Task:
        return _Task(self)

    def close(self, task: object) -> None:
        pass

    def note(self, message: str) -> None:
        pass


# -- item 5: a file changed during its upload is never published --------------------------


@pytest.mark.parametrize("age", ["written-just-now", "written-long-ago"])
def test_file_changed_during_upload_aborts_and_publishes_nothing(
    age: str,
    model: Path,
    store: LocalStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = model / "weights" / "big.bin"
    if age == "written-long-ago":
        for path in model.rglob("*"):
            os.utime(path, (OLD_DATE, OLD_DATE))
    originals = {sha256(p.read_bytes()) for p in model.rglob("*") if p.is_file()}
    rewrite = RewriteMidway(big)
    monkeypatch.setattr(CliContext, "reporter", lambda self: rewrite)

    line = error_line(capsys, "upload", str(model), "--store", store.uri, code=1)

    assert rewrite.done, "the file was never rewritten: the test did not exercise the race"
    assert "big.bin changed while it was being uploaded; nothing was published" in line
    assert stored_files(store, "packages") == []
    blobs = stored_files(store, "blobs")
    assert not [b for b in blobs if b.name.startswith(".")], "a temporary file was left behind"
    for blob in blobs:  # only whole states of files, each under its own digest
        assert blob.name in originals | {sha256(rewrite.new_content)}
        assert sha256(blob.read_bytes()) == blob.name


# -- item 6: damaged blobs are quarantined and sent again ----------------------------------


def damage(store: LocalStore, digest: str) -> bytes:
    """Flip one byte of a stored blob; return the damaged content."""
    blob = store.root / blob_key(digest)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    return bytes(data)


def test_damaged_blob_is_quarantined_on_read_and_the_next_upload_restores_it(
    model: Path, store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(capsys, "upload", str(model), "--store", store.uri)
    digest = sha256((model / "weights" / "big.bin").read_bytes())
    damaged = damage(store, digest)

    line = error_line(capsys, "package", "download", first["uri"], str(tmp_path / "a"), code=1)
    assert f"blob {digest[:12]}" in line and "moved to quarantine/sha256/" in line
    assert not (store.root / blob_key(digest)).exists()
    [aside] = stored_files(store, "quarantine")
    assert aside.name.startswith(digest) and aside.read_bytes() == damaged

    again = run(capsys, "upload", str(model), "--store", store.uri, "--no-cache")
    assert again["digest"] == first["digest"]
    assert again["blobs_sent"] == 1 and again["bytes_sent"] == 20 * MiB

    run(capsys, "package", "download", first["uri"], str(tmp_path / "b"))
    back = tmp_path / "b" / "weights" / "big.bin"
    assert back.read_bytes() == (model / "weights" / "big.bin").read_bytes()


def test_upload_with_the_hash_cache_sends_a_quarantined_blob_again(
    model: Path, store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in model.rglob("*"):  # old enough for the hash cache to trust and keep
        os.utime(path, (OLD_DATE, OLD_DATE))
    first = run(capsys, "upload", str(model), "--store", store.uri)
    cached = run(capsys, "upload", str(model), "--store", store.uri)
    assert cached["blobs_sent"] == 0 and cached["digest"] == first["digest"]
    digest = sha256((model / "weights" / "big.bin").read_bytes())
    damage(store, digest)
    error_line(capsys, "package", "download", first["uri"], str(tmp_path / "a"), code=1)

    again = run(capsys, "upload", str(model), "--store", store.uri)
    assert again["blobs_sent"] == 1 and again["bytes_sent"] == 20 * MiB
    run(capsys, "package", "download", first["uri"], str(tmp_path / "b"))


def test_store_verify_reports_then_repairs(
    model: Path, store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(capsys, "upload", str(model), "--store", store.uri)
    intact = run(capsys, "store", "verify", "--store", store.uri)
    assert intact["blobs"] == first["blobs_total"] and intact["damaged"] == []
    assert intact["bytes"] == first["bytes_total"]

    digest = sha256((model / "weights" / "big.bin").read_bytes())
    damaged = damage(store, digest)
    report = run(capsys, "store", "verify", "--store", store.uri, code=1)
    [bad] = report["damaged"]
    assert bad["digest"] == digest and bad["actual"] == sha256(damaged)
    assert bad["quarantined"] is None and report["unrepaired"] == 1
    assert (store.root / blob_key(digest)).read_bytes() == damaged, "verify alone moved a blob"

    line = error_line(capsys, "store", "verify", "--store", store.uri, code=1)
    assert line.startswith(f"error: 1 of {first['blobs_total']} blobs in {store.uri} are damaged")
    assert "--repair" in line

    repaired = run(capsys, "store", "verify", "--store", store.uri, "--repair")
    assert repaired["unrepaired"] == 0
    assert repaired["damaged"][0]["quarantined"].startswith(f"quarantine/sha256/{digest}.")
    assert not (store.root / blob_key(digest)).exists()
    assert run(capsys, "store", "verify", "--store", store.uri)["damaged"] == []

    again = run(capsys, "upload", str(model), "--store", store.uri)
    assert again["blobs_sent"] == 1
    assert run(capsys, "store", "verify", "--store", store.uri)["blobs"] == first["blobs_total"]


def test_store_verify_of_an_empty_store_and_a_truncated_blob(
    model: Path, store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = run(capsys, "store", "verify", "--store", store.uri)
    assert (empty["blobs"], empty["bytes"], empty["damaged"]) == (0, 0, [])
    upload(model, store)
    digest = sha256((model / "weights" / "big.bin").read_bytes())
    blob = store.root / blob_key(digest)
    blob.chmod(0o644)
    os.truncate(blob, MiB)
    report = run(capsys, "store", "verify", "--store", store.uri, "--repair")
    assert [b["digest"] for b in report["damaged"]] == [digest]
    assert not blob.exists()


class CountingReporter:
    """Adds up each task's total and advances (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: list[int | None] = []
        self.advanced = 0

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> Any:
        self.totals.append(total)
        return self

    def advance(self, amount: int = 1) -> None:
        with self.lock:
            self.advanced += amount

    def update(self, description: str) -> None:
        pass

    def close(self, task: object) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def test_verify_reports_byte_progress(model: Path, store: LocalStore) -> None:
    result = upload(model, store)
    reporter = CountingReporter()
    verified = verify_store(store, reporter=reporter)
    assert reporter.totals == [result.bytes_total] == [verified.bytes]
    assert reporter.advanced == result.bytes_total


def test_library_read_of_a_damaged_blob_names_the_quarantine(
    model: Path, store: LocalStore, tmp_path: Path
) -> None:
    result = upload(model, store)
    digest = sha256((model / "weights" / "big.bin").read_bytes())
    damage(store, digest)
    with pytest.raises(DigestMismatchError) as info:
        download_package(store, result.digest, tmp_path / "back")
    assert info.value.quarantined is not None
    assert (store.root / info.value.quarantined).is_file()
    assert store.missing_blobs([digest]) == {digest}


# -- one live display for many tasks ------------------------------------------------------


class OneLiveConsole(Console):
    """A console that, like rich 13.7 (inside the pinned range), allows one live display."""

    active = 0

    def set_live(self, live: Any) -> Any:
        if self.active:
            raise LiveError("Only one live display may be active at once")
        self.active += 1
        return super().set_live(live)

    def clear_live(self) -> None:
        self.active -= 1
        super().clear_live()


def test_upload_shows_both_tasks_in_one_live_display(model: Path, store: LocalStore) -> None:
    console = OneLiveConsole(file=io.StringIO(), force_terminal=True, width=120)
    result = upload(model, store, reporter=RichReporter(console))
    assert result.blobs_sent == result.blobs_total
    assert console.active == 0, "the live display was left running"
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "uploading 4 files" in shown and "hashing 4 files" in shown
    # The display starts again for the next command's tasks.
    again = upload(model, LocalStore(store.root.parent / "other"), reporter=RichReporter(console))
    assert again.digest == result.digest and console.active == 0


def test_file_changed_during_upload_raises_in_the_library(model: Path, store: LocalStore) -> None:
    rewrite = RewriteMidway(model / "weights" / "big.bin")
    with pytest.raises(FileChangedError):
        upload(model, store, reporter=rewrite)
    assert stored_files(store, "packages") == []
