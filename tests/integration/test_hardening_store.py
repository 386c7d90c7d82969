"""The stores against real processes (issue 12, items 5-7): an upload killed with SIGKILL leaves
temporary files that the next upload removes, while a live concurrent upload's are kept; and on
a real moto S3 server, a file changed during its upload is never published and a damaged blob
is quarantined, found by `mlops store verify`, and sent again by the next upload."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.packages.download import download_package
from mlops_cli.packages.manifest import FileChangedError
from mlops_cli.packages.reference import manifest_key
from mlops_cli.packages.upload import upload
from mlops_cli.stores.base import blob_key
from mlops_cli.stores.local import LocalStore
from mlops_cli.stores.s3 import S3Store
from tests.cli import error_line, run
from tests.conftest import FIXTURES, REPO_ROOT
from tests.unit.test_hardening_store import RewriteMidway, sha256

pytestmark = pytest.mark.integration

MiB = 1 << 20
BUCKET = "models"
WAIT_S = 60.0  # generous bound for a loaded machine; never an assertion on speed

# Uploads MODEL to the file store STORE, and on the first chunk of the big file creates READY
# and waits until GO exists: the upload is stopped midway, its temporary file open.
HELD_UPLOAD = """
import sys, time
from pathlib import Path
from mlops_cli.stores.local import LocalStore
from mlops_cli.packages.upload import upload

model, store, ready, go = (Path(arg) for arg in sys.argv[1:5])

class HoldMidway:
    def task(self, description, *, total=None, unit=""):
        return self
    def close(self, task):
        pass
    def note(self, message):
        pass
    def update(self, description):
        pass
    def advance(self, amount=1):
        if amount >= 1 << 20 and not ready.exists():
            ready.touch()
            while not go.exists():
                time.sleep(0.01)

print(upload(model, LocalStore(store), reporter=HoldMidway()).digest, flush=True)
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    (folder / "weights" / "big.bin").write_bytes(os.urandom(20 * MiB))
    return folder


def temporaries(store: LocalStore, *, at_least: int = 0) -> dict[str, int]:
    """The temporary files of at least ``at_least`` bytes in the blob folder: name -> inode."""
    folder = store.root / "blobs" / "sha256"
    found = {p.name: p.stat() for p in folder.glob(".*")} if folder.exists() else {}
    return {name: info.st_ino for name, info in found.items() if info.st_size >= at_least}


@pytest.fixture
def held_upload(model: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A real upload process stopped midway (its temporary file written and open); yields it
    and the GO file that lets it finish. Killed at teardown if still running."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", HELD_UPLOAD, str(model), str(store), str(ready), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not ready.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the upload never reached its big file"
            time.sleep(0.02)
        yield process, go
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_killed_upload_leaves_temporaries_that_the_next_upload_removes(
    held_upload: tuple[subprocess.Popen[str], Path], model: Path, tmp_path: Path
) -> None:
    process, _ = held_upload
    store = LocalStore(tmp_path / "store")
    [big] = temporaries(store, at_least=MiB)  # the big file's copy, stopped midway
    assert big.startswith(".ingest.")
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=WAIT_S) == -signal.SIGKILL
    left = temporaries(store)
    assert big in left, "the killed upload's temporary file should still be there"

    result = upload(model, store)
    assert temporaries(store) == {}
    assert store.stats.stale_temporaries_removed == len(left)
    assert store.stats.stale_bytes_removed >= MiB
    assert (store.root / manifest_key(result.digest)).is_file()


def test_a_live_concurrent_upload_keeps_its_temporary_files(
    held_upload: tuple[subprocess.Popen[str], Path], model: Path, tmp_path: Path
) -> None:
    process, go = held_upload
    store = LocalStore(tmp_path / "store")
    live = temporaries(store, at_least=MiB)  # the big file's copy, stopped midway
    assert len(live) == 1

    other = tmp_path / "other"
    shutil.copytree(model, other)
    (other / "weights" / "big.bin").write_bytes(os.urandom(3 * MiB))
    upload(other, store)  # sweeps the folder for stale temporaries first
    assert store.stats.stale_temporaries_removed == 0
    assert temporaries(store, at_least=MiB) == live, "a live upload's temporary file was removed"

    go.touch()
    out, err = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, err
    digest = out.strip()
    assert (store.root / manifest_key(digest)).is_file()
    assert temporaries(store) == {}
    back = download_package(store, digest, tmp_path / "back")
    assert back.file("weights/big.bin").sha256 == sha256((model / "weights/big.bin").read_bytes())


# -- the S3 store on a real moto server --------------------------------------------------------


@pytest.fixture
def s3(aws: Any) -> Any:
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def keys(client: Any, prefix: str = "") -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_s3_file_changed_during_upload_publishes_nothing(s3: Any, model: Path) -> None:
    store = S3Store(BUCKET, "team", part_size=5 * MiB)
    originals = {sha256(p.read_bytes()) for p in model.rglob("*") if p.is_file()}
    rewrite = RewriteMidway(model / "weights" / "big.bin")
    with pytest.raises(FileChangedError, match=r"big\.bin changed while it was being uploaded"):
        upload(model, store, reporter=rewrite)
    assert rewrite.done
    assert keys(s3, "team/packages/") == []
    for key in keys(s3, "team/blobs/"):
        name = key.rsplit("/", 1)[1]
        assert name in originals | {sha256(rewrite.new_content)}
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert sha256(body) == name
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_s3_damaged_blob_is_quarantined_verified_and_restored(
    s3: Any, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"s3://{BUCKET}/team"
    first = run(capsys, "upload", str(model), "--store", uri)
    digest = sha256((model / "weights" / "big.bin").read_bytes())
    key = f"team/{blob_key(digest)}"
    damaged = b"not the weights"
    s3.put_object(Bucket=BUCKET, Key=key, Body=damaged)

    report = run(capsys, "store", "verify", "--store", uri, code=1)
    assert [b["digest"] for b in report["damaged"]] == [digest]
    assert report["blobs"] == first["blobs_total"]
    assert keys(s3, "team/quarantine/") == [], "verify without --repair moved something"

    line = error_line(capsys, "package", "download", first["uri"], str(tmp_path / "a"), code=1)
    assert f"blob {digest[:12]}" in line and "quarantine/sha256/" in line
    [aside] = keys(s3, "team/quarantine/")
    assert aside.startswith(f"team/quarantine/sha256/{digest}.")
    assert s3.get_object(Bucket=BUCKET, Key=aside)["Body"].read() == damaged
    assert key not in keys(s3, "team/blobs/")

    again = run(capsys, "upload", str(model), "--store", uri, "--no-cache")
    assert again["blobs_sent"] == 1 and again["digest"] == first["digest"]
    assert run(capsys, "store", "verify", "--store", uri)["damaged"] == []
    store = S3Store(BUCKET, "team")
    download_package(store, first["digest"], tmp_path / "b")
    assert (tmp_path / "b/weights/big.bin").read_bytes() == (model / "weights/big.bin").read_bytes()


def test_s3_store_verify_repair_moves_large_blobs_with_a_multipart_copy(
    s3: Any, model: Path
) -> None:
    store = S3Store(BUCKET, "team", part_size=5 * MiB)
    store.single_copy_limit = store.copy_part_size = 5 * MiB  # as above 5 GB, scaled down
    upload(model, store)
    small = sha256((FIXTURES / "models/tiny/weights/small.bin").read_bytes())
    big = sha256((model / "weights" / "big.bin").read_bytes())
    bad_big = os.urandom(12 * MiB)
    s3.put_object(Bucket=BUCKET, Key=f"team/{blob_key(small)}", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"team/{blob_key(big)}", Body=bad_big)
    from mlops_cli.stores.verify import verify_store

    result = verify_store(store, repair=True)
    assert sorted(b.digest for b in result.damaged) == sorted([small, big])
    assert result.unrepaired == []
    assert store.missing_blobs([small, big]) == {small, big}
    moved = {b.digest: b.quarantined for b in result.damaged}
    body = s3.get_object(Bucket=BUCKET, Key=f"team/{moved[big]}")["Body"].read()
    assert body == bad_big
    assert verify_store(store).damaged == []
