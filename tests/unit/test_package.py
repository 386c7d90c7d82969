"""Packages on the file store: content addressing, dedup, reproducibility, and bad input that
leaves nothing visible."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from mlops_cli.cli.main import main
from mlops_cli.packages.build import build_package, push_package
from mlops_cli.packages.download import download_package
from mlops_cli.packages.hashcache import HashCache
from mlops_cli.packages.manifest import FileChangedError, PackageError, PackageManifest
from mlops_cli.packages.reference import manifest_key
from mlops_cli.packages.upload import upload
from mlops_cli.render.sagemaker import publish_tarball
from mlops_cli.spec.modelspec import SpecError
from mlops_cli.stores import open_store
from mlops_cli.stores.base import DigestMismatchError, blob_key
from mlops_cli.stores.local import LocalStore
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit


class RecordedTask:
    def __init__(self, recorder: Recorder, description: str) -> None:
        self.recorder = recorder
        self.description = description

    def advance(self, amount: int = 1) -> None:
        with self.recorder.lock:
            self.recorder.advanced[self.description] += amount

    def update(self, description: str) -> None:
        pass


class Recorder:
    """A Reporter that adds up what each task advances, by the task's first description."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.totals: dict[str, int] = {}
        self.advanced: dict[str, int] = {}
        self.notes: list[str] = []

    def task(self, description: str, *, total: int | None = None, unit: str = "") -> RecordedTask:
        self.totals[description] = total or 0
        self.advanced[description] = 0
        return RecordedTask(self, description)

    def close(self, task: object) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    (folder / "weights" / "big.bin").write_bytes(os.urandom(3 << 20))
    return folder


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def store_files(store: LocalStore) -> list[str]:
    if not store.root.exists():
        return []
    return sorted(
        p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()
    )


def test_round_trip_digests_equal(model: Path, store: LocalStore, tmp_path: Path) -> None:
    result = upload(model, store)
    assert result.files == 4 and result.bytes_sent == result.bytes_total
    back = tmp_path / "back"
    manifest = download_package(store, result.digest, back)
    assert manifest.digest == result.digest
    for entry in manifest.files:
        data = (back / entry.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert data == (model / entry.path).read_bytes()
    assert result.uri == store.package_uri(result.digest)
    assert json.loads((store.root / manifest_key(result.digest)).read_bytes())["name"] == "tiny"


def test_second_upload_sends_nothing_and_one_change_sends_one_blob(
    model: Path, store: LocalStore
) -> None:
    first = upload(model, store)
    second = upload(model, store)
    assert second.digest == first.digest
    assert second.bytes_sent == 0 and second.blobs_sent == 0
    assert store.stats.blob_bytes_sent == first.bytes_total  # counted by the store itself

    (model / "weights" / "small.bin").write_bytes(b"changed weights\n")
    third = upload(model, store)
    assert third.digest != first.digest
    assert third.blobs_sent == 1 and third.bytes_sent == len(b"changed weights\n")


def test_digest_is_reproducible_across_copies_and_times(model: Path, tmp_path: Path) -> None:
    first = build_package(model).manifest
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    for path in copy.rglob("*"):
        os.utime(path, (1, 1))
    assert build_package(copy).manifest.digest == first.digest
    assert PackageManifest.from_bytes(first.to_bytes()).digest == first.digest


def test_progress_totals_equal_the_bytes(model: Path, store: LocalStore, tmp_path: Path) -> None:
    recorder = Recorder()
    result = upload(model, store, reporter=recorder)  # type: ignore[arg-type]
    assert recorder.totals == recorder.advanced, "a task's total differs from what it advanced"
    assert recorder.totals["uploading 4 files"] == result.bytes_total == result.bytes_sent
    # S3-like stores hash first: the hashing task then counts every byte too
    build = Recorder()
    build_package(model, reporter=build)  # type: ignore[arg-type]
    assert build.totals == build.advanced == {"hashing 4 files": result.bytes_total}


def test_hash_cache_skips_unchanged_files_and_notices_changes(
    model: Path, store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in model.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))  # old enough to be trusted
    cache = HashCache(tmp_path / "hashes.json")
    first = upload(model, store, cache=cache)
    assert (tmp_path / "hashes.json").exists()
    again = HashCache(tmp_path / "hashes.json")
    import mlops_cli.packages.hashing as package_module

    hashed: list[Path] = []
    real_hash = package_module.hash_file

    def counting(path: Path, on_bytes: object = None) -> tuple[str, int]:
        hashed.append(path)
        return real_hash(path, on_bytes)  # type: ignore[arg-type]

    monkeypatch.setattr(package_module, "hash_file", counting)
    entries = build_package(model, cache=again).manifest
    assert entries.digest == first.digest
    assert hashed == [], "unchanged files were read again"
    (model / "weights" / "big.bin").write_bytes(b"new")
    assert build_package(model, cache=again).manifest.digest != first.digest
    assert hashed == [model.resolve() / "weights" / "big.bin"]


def test_tarball_is_reproducible_and_complete(
    model: Path, store: LocalStore, tmp_path: Path
) -> None:
    result = upload(model, store)
    manifest = store.get_manifest(result.digest)
    a = publish_tarball(store, manifest, str(tmp_path / "a" / "model.tar.gz"))
    b = publish_tarball(store, manifest, str(tmp_path / "b" / "model.tar.gz"))
    assert (tmp_path / "a" / "model.tar.gz").read_bytes() == (
        tmp_path / "b" / "model.tar.gz"
    ).read_bytes()
    assert a.bytes == b.bytes == (tmp_path / "a" / "model.tar.gz").stat().st_size
    # a triton-python package: one Triton repository entry, <name>/config.pbtxt + <name>/1/...
    names = sorted(["tiny/config.pbtxt", *(f"tiny/1/{e.path}" for e in manifest.files)])
    with tarfile.open(tmp_path / "a" / "model.tar.gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == names
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (946684800, 0, 0, "", "")
        }
        for member in members:
            if member.name == "tiny/config.pbtxt":
                continue
            entry = manifest.file(member.name.removeprefix("tiny/1/"))
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            assert hashlib.sha256(data).hexdigest() == entry.sha256
            assert member.mode == (0o755 if entry.executable else 0o644)
    # GNU tar reads it too, and the archive ends as tar's own do (a whole 10 KiB record)
    listing = subprocess.run(
        ["tar", "tzf", str(tmp_path / "a" / "model.tar.gz")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.split() == names
    import gzip

    assert len(gzip.decompress((tmp_path / "a" / "model.tar.gz").read_bytes())) % 10240 == 0


# -- bad input: one clear error, nothing partial visible ------------------------------------------


def assert_store_empty(store: LocalStore) -> None:
    assert [f for f in store_files(store) if f.startswith("packages/")] == []


def test_symlink_leaving_the_folder(model: Path, store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("outside")
    os.symlink(tmp_path / "secret", model / "weights" / "link.bin")
    with pytest.raises(PackageError, match="points outside the model folder"):
        upload(model, store)
    os.unlink(model / "weights" / "link.bin")
    os.symlink("../../secret", model / "weights" / "dotdot.bin")
    with pytest.raises(PackageError, match="points outside"):
        upload(model, store)
    assert store_files(store) == []


def test_symlink_inside_the_folder_is_packaged_as_its_bytes(model: Path, store: LocalStore) -> None:
    os.symlink("small.bin", model / "weights" / "alias.bin")
    manifest = build_package(model).manifest
    assert manifest.file("weights/alias.bin").sha256 == manifest.file("weights/small.bin").sha256


def test_fifo_and_device_files(model: Path, store: LocalStore) -> None:
    os.mkfifo(model / "weights" / "pipe.bin")
    with pytest.raises(PackageError, match="is a FIFO"):
        upload(model, store)
    os.unlink(model / "weights" / "pipe.bin")
    try:
        os.mknod(model / "null.dev", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("cannot create a device node here")
    with pytest.raises(PackageError, match="device or socket"):
        upload(model, store)
    assert store_files(store) == []


def test_non_utf8_file_name(model: Path, store: LocalStore) -> None:
    os.close(
        os.open(
            os.fsencode(str(model / "weights")) + b"/\xff\xfe.bin", os.O_CREAT | os.O_WRONLY, 0o644
        )
    )
    with pytest.raises(PackageError, match="not UTF-8"):
        upload(model, store)
    assert store_files(store) == []


def test_empty_folder(tmp_path: Path, store: LocalStore) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="is empty"):
        upload(tmp_path / "empty", store)


@pytest.mark.parametrize(
    "aged", [False, True], ids=["fresh-file-rehashed", "old-file-identity-checked"]
)
def test_file_modified_between_hashing_and_sending(
    model: Path, store: LocalStore, aged: bool
) -> None:
    if aged:
        for path in model.rglob("*"):
            os.utime(path, (1_000_000_000, 1_000_000_000))
    build = build_package(model)
    (model / "weights" / "big.bin").write_bytes(os.urandom(3 << 20))
    with pytest.raises(FileChangedError, match="changed while it was being uploaded"):
        push_package(build, store)
    assert_store_empty(store)
    changed = build.manifest.file("weights/big.bin").sha256
    assert not (store.root / blob_key(changed)).exists()
    assert not [f for f in store_files(store) if "/." in f], "a temporary file was left behind"


def test_manifest_paths_that_escape_are_refused() -> None:
    for bad in ("../evil", "/etc/passwd", "a/../../b"):
        document = {
            "mediaType": "application/vnd.mlops.package.v1+json",
            "name": "x",
            "files": [{"path": bad, "size": 1, "sha256": "0" * 64}],
        }
        with pytest.raises(PackageError, match="unsafe path"):
            PackageManifest.from_bytes(json.dumps(document).encode())


def test_corrupt_blob_is_detected_on_read(model: Path, store: LocalStore, tmp_path: Path) -> None:
    result = upload(model, store)
    entry = store.get_manifest(result.digest).file("weights/big.bin")
    blob = store.root / blob_key(entry.sha256)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        download_package(store, result.digest, tmp_path / "back")
    assert not (tmp_path / "back" / "weights" / "big.bin").exists()


def test_schema_errors_through_the_cli(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = model / "mlops.yaml"
    original = spec.read_text()
    cases = {
        original.replace("entrypoint:", "entrypont:"): "did you mean 'entrypoint'",
        original.replace(
            "dtype: FP32, shape: [-1]}\noutputs", "dtype: FP33, shape: [-1]}\noutputs"
        ): "did you mean 'FP32'",
        original.replace(
            "entrypoint: model.py", "entrypoint: missing.py"
        ): "file missing.py does not exist",
        original.replace("resources:", "resources: [\n"): "malformed YAML",
    }
    for text, expected in cases.items():
        spec.write_text(text)
        assert main(["upload", str(model)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert not (Path.cwd() / ".mlops" / "store").exists(), "a refused upload wrote to the store"


def test_validate_command_lists_findings(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    spec = model / "mlops.yaml"
    spec.write_text(
        spec.read_text().replace("runtime: triton-python", "runtime: sagemaker-mms")
        + "streaming: true\n"
    )
    assert main(["validate", str(model), "--json"]) == 2
    messages = [f["message"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert any("defines no function handle" in m for m in messages)
    assert any("cannot stream" in m for m in messages)


def test_unknown_store_scheme() -> None:
    from mlops_cli.errors import UsageError

    with pytest.raises(UsageError) as info:
        open_store("ftp://somewhere")
    assert info.value.hint == "registered schemes: file://, s3://"


def test_upload_cli_json(model: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["upload", str(model), "--store", (tmp_path / "s").as_uri(), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"digest", "uri", "bytes_total", "bytes_sent"} <= result.keys()
    assert main(["package", "show", result["uri"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["digest"] == result["digest"] and len(shown["files"]) == 4
    assert main(["package", "download", result["uri"], str(tmp_path / "dl"), "--json"]) == 0
    capsys.readouterr()
    assert (tmp_path / "dl" / "weights" / "big.bin").read_bytes() == (
        model / "weights" / "big.bin"
    ).read_bytes()
    assert (
        main(["package", "show", "sha256:" + "0" * 64, "--store", (tmp_path / "s").as_uri()]) == 1
    )
    assert "no package sha256:000" in capsys.readouterr().err


def test_spec_error_is_a_validation_error() -> None:
    assert issubclass(SpecError, ValueError)


def test_corrupt_blob_aborts_the_tarball_and_leaves_nothing(
    model: Path, store: LocalStore, tmp_path: Path
) -> None:
    result = upload(model, store)
    manifest = store.get_manifest(result.digest)
    blob = store.root / blob_key(manifest.file("weights/big.bin").sha256)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        publish_tarball(store, manifest, str(tmp_path / "out" / "model.tar.gz"))
    assert list((tmp_path / "out").iterdir()) == []
