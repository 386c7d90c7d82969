"""The S3 artifact store against a real moto server over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.packages.build import build_package, push_package
from mlops_cli.packages.download import download_package
from mlops_cli.packages.manifest import FileChangedError
from mlops_cli.packages.reference import manifest_key
from mlops_cli.packages.upload import upload
from mlops_cli.render.sagemaker import publish_tarball
from mlops_cli.stores.base import blob_key
from mlops_cli.stores.local import LocalStore
from mlops_cli.stores.s3 import S3Store
from tests.conftest import FIXTURES

pytestmark = pytest.mark.integration

MiB = 1 << 20
BUCKET = "models"


@pytest.fixture
def s3(aws: Any) -> Any:
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    (folder / "weights" / "big.bin").write_bytes(os.urandom(12 * MiB))
    return folder


def objects(client: Any) -> dict[str, str]:
    listing = client.list_objects_v2(Bucket=BUCKET)
    return {item["Key"]: item["ETag"] for item in listing.get("Contents", [])}


def pending_uploads(client: Any) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def test_round_trip_multipart_and_dedup(s3: Any, model: Path, tmp_path: Path) -> None:
    store = S3Store(BUCKET, "team-a", part_size=5 * MiB)
    first = upload(model, store)
    assert first.uri == f"s3://{BUCKET}/team-a/{manifest_key(first.digest)}"
    assert first.bytes_sent == first.bytes_total == store.stats.blob_bytes_sent

    big = store.get_manifest(first.digest).file("weights/big.bin")
    head = s3.head_object(Bucket=BUCKET, Key=f"team-a/{blob_key(big.sha256)}")
    assert head["ContentLength"] == 12 * MiB
    assert head["ETag"].strip('"').endswith("-3"), "12 MiB in 5 MiB parts is a 3-part upload"

    back = tmp_path / "back"
    manifest = download_package(store, first.digest, back)
    for entry in manifest.files:
        assert hashlib.sha256((back / entry.path).read_bytes()).hexdigest() == entry.sha256

    before = objects(s3)
    again = S3Store(BUCKET, "team-a", part_size=5 * MiB)
    second = upload(model, again)
    assert second.digest == first.digest
    assert second.bytes_sent == 0 and again.stats.blob_bytes_sent == 0
    assert objects(s3) == before, "the server's objects changed on an unchanged upload"

    (model / "weights" / "small.bin").write_bytes(b"retrained\n")
    third_store = S3Store(BUCKET, "team-a", part_size=5 * MiB)
    third = upload(model, third_store)
    assert third.blobs_sent == 1 and third.bytes_sent == len(b"retrained\n")
    after = objects(s3)
    assert len(after) == len(before) + 2  # one new blob, one new manifest
    assert all(after[key] == etag for key, etag in before.items())


@pytest.mark.parametrize(
    "aged", [False, True], ids=["fresh-file-rehashed", "old-file-identity-checked"]
)
def test_file_changed_mid_upload_leaves_nothing(s3: Any, model: Path, aged: bool) -> None:
    if aged:  # old files are verified by identity and times instead of a second hash
        for path in model.rglob("*"):
            os.utime(path, (1_000_000_000, 1_000_000_000))
    store = S3Store(BUCKET, part_size=5 * MiB)
    build = build_package(model)
    (model / "weights" / "big.bin").write_bytes(os.urandom(12 * MiB))
    with pytest.raises(FileChangedError):
        push_package(build, store)
    keys = objects(s3)
    assert not [k for k in keys if k.startswith("packages/")]
    assert blob_key(build.manifest.file("weights/big.bin").sha256) not in keys
    assert pending_uploads(s3) == [], "an aborted multipart upload was left open"


def test_progress_of_a_pipelined_upload(s3: Any, model: Path) -> None:
    from tests.unit.test_package import Recorder

    recorder = Recorder()
    result = upload(model, S3Store(BUCKET, part_size=5 * MiB), reporter=recorder)  # type: ignore[arg-type]
    assert recorder.totals == recorder.advanced
    assert recorder.totals == {
        "uploading 4 files": result.bytes_total,
        "hashing 4 files": result.bytes_total,
    }


def test_streamed_tarball_to_s3_equals_the_local_one(s3: Any, model: Path, tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "store")
    manifest = local.get_manifest(upload(model, local).digest)
    on_disk = publish_tarball(local, manifest, str(tmp_path / "model.tar.gz"))
    streamed = publish_tarball(
        local, manifest, f"s3://{BUCKET}/endpoints/ep/tiny-v1.tar.gz", part_size=5 * MiB
    )
    body = s3.get_object(Bucket=BUCKET, Key="endpoints/ep/tiny-v1.tar.gz")["Body"].read()
    assert body == (tmp_path / "model.tar.gz").read_bytes()
    assert streamed.bytes == on_disk.bytes == len(body)
    assert pending_uploads(s3) == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_bucket_is_one_clear_line(aws: Any, model: Path) -> None:
    result = run_cli("upload", str(model), "--store", "s3://no-such-bucket/x")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-bucket" in lines[0] and "aws s3 mb" in lines[0], lines


def test_unreachable_store(aws: Any, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    result = run_cli("upload", str(model), "--store", f"s3://{BUCKET}/x")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach" in lines[0], lines


def test_missing_credentials(
    aws: Any, model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run_cli("upload", str(model), "--store", f"s3://{BUCKET}/x")
    assert result.returncode == 1
    assert (
        "no AWS credentials found" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    )


def test_refused_credentials(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.servers.moto import MotoServer

    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # this moto checks every request
    with MotoServer().start() as strict:
        for name, value in strict.env().items():
            monkeypatch.setenv(name, value)
        result = run_cli("upload", str(model), "--store", f"s3://{BUCKET}/x")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0], lines


def test_killed_upload_resumes_with_only_missing_blobs(s3: Any, model: Path) -> None:
    (model / "weights" / "big.bin").write_bytes(os.urandom(160 * MiB))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_cli",
            "upload",
            str(model),
            "--store",
            f"s3://{BUCKET}/p",
            "--no-cache",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        if uploads:
            parts = s3.list_parts(
                Bucket=BUCKET, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
            )
            if parts.get("Parts"):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert killed, "the upload finished before it could be killed; make the file larger"
    assert not [k for k in objects(s3) if k.startswith("p/packages/")], (
        "a killed upload published a package"
    )

    rerun = run_cli("upload", str(model), "--store", f"s3://{BUCKET}/p", "--json")
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["blobs_sent"] == 1
    assert result["bytes_sent"] == 160 * MiB
    assert pending_uploads(s3) == [], "the stale multipart upload was not cleaned"
