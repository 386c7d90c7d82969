"""The promises of :class:`mlops_cli.stores.base.ArtifactStore`, checked on every store.

Each test runs once per backend (``file://`` and ``s3://`` on the moto server; see
``store_target`` in ``conftest.py``) and looks at the result two ways: through the store's own
API, and through raw access to the location that bypasses the store (what a second process, or
``aws s3 ls``, would see). Blobs are 12 MiB where size matters: above the S3 store's 5 MiB part
size, so S3 takes its multipart path, and large enough for the rewrite-midway reporter of the
hardening tests to tear the file while it is being sent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from mlops_cli.errors import NotFoundError
from mlops_cli.packages.build import build_package, push_package
from mlops_cli.packages.download import download_package
from mlops_cli.packages.manifest import FileChangedError, FileEntry, PackageManifest
from mlops_cli.packages.reference import manifest_key
from mlops_cli.packages.upload import upload
from mlops_cli.stores.base import DigestMismatchError, PackageNotFoundError, blob_key
from mlops_cli.stores.verify import verify_store
from tests.conformance.conftest import StoreTarget
from tests.conftest import FIXTURES
from tests.unit.test_hardening_store import OLD_DATE, RewriteMidway

pytestmark = [pytest.mark.integration]

MiB = 1 << 20
SIZES = {"small": 1000, "multipart": 12 * MiB}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_file(tmp_path: Path, size: int, *, name: str = "blob.bin") -> tuple[Path, str]:
    """A file of ``size`` random bytes and its digest."""
    path = tmp_path / name
    data = os.urandom(size)
    path.write_bytes(data)
    return path, sha256(data)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """The tiny fixture model with a 12 MiB weight file (four blobs in all)."""
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    (folder / "weights" / "big.bin").write_bytes(os.urandom(12 * MiB))
    return folder


def big_digest(model: Path) -> str:
    return sha256((model / "weights" / "big.bin").read_bytes())


# -- put, then a verified read ---------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_put_then_read_round_trips(store_target: StoreTarget, tmp_path: Path, size: int) -> None:
    store = store_target.open()
    path, digest = blob_file(tmp_path, size)

    sent = store.put_blob(digest, path)

    assert sent == size
    assert (store.stats.blobs_sent, store.stats.blob_bytes_sent) == (1, size)
    assert store.blob_size(digest) == size
    assert store_target.read_raw(blob_key(digest)) == path.read_bytes()
    back = tmp_path / "back" / "blob.bin"
    store.read_blob(digest, back)
    assert back.read_bytes() == path.read_bytes()
    with store.open_blob(digest) as reader:
        assert sha256(reader.read()) == digest
    assert store_target.unfinished_uploads() == []


def test_a_package_round_trips_through_upload_and_download(
    store_target: StoreTarget, model: Path, tmp_path: Path
) -> None:
    store = store_target.open()
    result = upload(model, store)

    assert result.uri == store.package_uri(result.digest)
    assert result.uri.endswith(manifest_key(result.digest))
    manifest = store.get_manifest(result.digest)
    assert manifest.digest == result.digest and store.has_package(result.digest)
    back = tmp_path / "back"
    download_package(store, result.digest, back)
    for entry in manifest.files:
        assert sha256((back / entry.path).read_bytes()) == entry.sha256


# -- a damaged blob is detected on read and moved aside ---------------------------------------


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated"])
def test_a_damaged_blob_is_detected_on_read_and_quarantined(
    store_target: StoreTarget, tmp_path: Path, damage: str
) -> None:
    store = store_target.open()
    path, digest = blob_file(tmp_path, 2 * MiB)
    store.put_blob(digest, path)
    data = bytearray(path.read_bytes())
    if damage == "flipped-byte":
        data[100] ^= 0xFF
    else:
        del data[MiB:]
    store_target.write_raw(blob_key(digest), bytes(data))

    dest = tmp_path / "back" / "blob.bin"
    with pytest.raises(DigestMismatchError) as info:
        store.read_blob(digest, dest)

    assert info.value.expected == digest and info.value.actual == sha256(bytes(data))
    assert not dest.exists() and list(dest.parent.iterdir()) == [], "a partial file was left"
    aside = info.value.quarantined
    assert aside is not None and aside.startswith(f"quarantine/sha256/{digest}.")
    assert aside in str(info.value.hint)  # the error says where the damaged bytes went
    assert store_target.keys("quarantine/") == [aside]
    assert store_target.read_raw(aside) == bytes(data)
    assert store.missing_blobs([digest]) == {digest}, "a quarantined blob still counts as stored"
    assert blob_key(digest) not in store_target.keys("blobs/")


def test_a_read_that_does_not_quarantine_leaves_the_damaged_blob(
    store_target: StoreTarget, tmp_path: Path
) -> None:
    store = store_target.open()
    path, digest = blob_file(tmp_path, 1000)
    store.put_blob(digest, path)
    store_target.write_raw(blob_key(digest), b"not the bytes")

    with (
        pytest.raises(DigestMismatchError) as info,
        store.open_blob(digest, quarantine_damaged=False) as reader,
    ):
        reader.read()

    assert info.value.quarantined is None
    assert store_target.read_raw(blob_key(digest)) == b"not the bytes"
    assert store_target.keys("quarantine/") == []


def test_the_next_upload_sends_a_quarantined_blob_again(
    store_target: StoreTarget, model: Path, tmp_path: Path
) -> None:
    first = upload(model, store_target.open())
    digest = big_digest(model)
    store_target.write_raw(blob_key(digest), b"bit rot")
    with pytest.raises(DigestMismatchError):
        download_package(store_target.open(), first.digest, tmp_path / "a")

    store = store_target.open()
    again = upload(model, store)

    assert again.digest == first.digest
    assert (again.blobs_sent, again.bytes_sent) == (1, 12 * MiB)
    assert (store.stats.blobs_sent, store.stats.blob_bytes_sent) == (1, 12 * MiB)
    download_package(store, first.digest, tmp_path / "b")
    assert (tmp_path / "b" / "weights" / "big.bin").read_bytes() == (
        model / "weights" / "big.bin"
    ).read_bytes()


def test_a_damaged_manifest_is_refused(store_target: StoreTarget, model: Path) -> None:
    store = store_target.open()
    digest = upload(model, store).digest
    store_target.write_raw(manifest_key(digest), b'{"mediaType": "tampered"}')

    with pytest.raises(DigestMismatchError, match=f"manifest {digest[:12]}"):
        store.get_manifest(digest)


# -- a file changed during its upload publishes nothing ----------------------------------------


@pytest.mark.parametrize("age", ["written-just-now", "written-long-ago"])
def test_a_file_changed_mid_upload_aborts_with_nothing_published(
    store_target: StoreTarget, model: Path, age: str
) -> None:
    """The rewrite happens at the first MiB of progress of the big file (deterministic, not a
    race). A recent file is proved by hashing what is sent; an old one by its identity and
    times: both ways, the change is caught and nothing is published."""
    if age == "written-long-ago":
        for path in model.rglob("*"):
            os.utime(path, (OLD_DATE, OLD_DATE))
    originals = {sha256(p.read_bytes()) for p in model.rglob("*") if p.is_file()}
    rewrite = RewriteMidway(model / "weights" / "big.bin")

    with pytest.raises(FileChangedError, match=r"big\.bin changed while it was being uploaded"):
        upload(model, store_target.open(), reporter=rewrite)

    assert rewrite.done, "the file was never rewritten: the test did not exercise the change"
    assert store_target.keys("packages/") == []
    assert store_target.unfinished_uploads() == []
    for key in store_target.keys("blobs/"):  # only whole states of files, each under its digest
        name = key.rsplit("/", 1)[1]
        assert name in originals | {sha256(rewrite.new_content)}
        assert sha256(store_target.read_raw(key)) == name


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_blob_put_of_a_changed_file_publishes_nothing(
    store_target: StoreTarget, tmp_path: Path, size: int
) -> None:
    """The file was hashed, then rewritten (same size) before its put; the caller's identity
    check says so. The store must not publish the new bytes under the old digest."""
    store = store_target.open()
    path, digest = blob_file(tmp_path, size)
    path.write_bytes(os.urandom(size))

    with pytest.raises(FileChangedError):
        store.put_blob(digest, path, unchanged=lambda: False)

    assert store.missing_blobs([digest]) == {digest}
    assert store_target.keys("blobs/") == []
    assert store_target.unfinished_uploads() == []
    assert store.stats.blobs_sent == 0


# -- the manifest is written last ---------------------------------------------------------------


def test_a_manifest_whose_blobs_are_missing_is_refused(
    store_target: StoreTarget, tmp_path: Path
) -> None:
    store = store_target.open()
    present, present_digest = blob_file(tmp_path, 1000, name="present.bin")
    _, absent_digest = blob_file(tmp_path, 1000, name="absent.bin")
    store.put_blob(present_digest, present)
    manifest = PackageManifest(
        name="half",
        files=(
            FileEntry("present.bin", 1000, present_digest),
            FileEntry("absent.bin", 1000, absent_digest),
        ),
    )

    with pytest.raises(NotFoundError, match="1 of its blobs are not in"):
        store.put_manifest(manifest)

    assert store_target.keys("packages/") == []
    assert not store.has_package(manifest.digest)
    assert store.stats.manifests_sent == 0
    with pytest.raises(PackageNotFoundError):
        store.get_manifest(manifest.digest)


def test_a_failed_blob_put_leaves_no_manifest(store_target: StoreTarget, model: Path) -> None:
    """The package was hashed, then its big file rewritten before the push: every other blob
    is stored, the big one fails, and no package is visible."""
    build = build_package(model)
    (model / "weights" / "big.bin").write_bytes(os.urandom(12 * MiB))

    with pytest.raises(FileChangedError):
        push_package(build, store_target.open())

    stored = {key.rsplit("/", 1)[1] for key in store_target.keys("blobs/")}
    assert stored == set(build.manifest.blob_digests()) - {
        build.manifest.file("weights/big.bin").sha256
    }
    assert store_target.keys("packages/") == []
    assert not store_target.open().has_package(build.manifest.digest)
    assert store_target.unfinished_uploads() == []


def test_put_manifest_publishes_once_every_blob_is_there(
    store_target: StoreTarget, tmp_path: Path
) -> None:
    store = store_target.open()
    first, first_digest = blob_file(tmp_path, 1000, name="first.bin")
    second, second_digest = blob_file(tmp_path, 2000, name="second.bin")
    manifest = PackageManifest(
        name="whole",
        files=(
            FileEntry("first.bin", 1000, first_digest),
            FileEntry("second.bin", 2000, second_digest),
        ),
    )
    store.put_blob(first_digest, first)
    with pytest.raises(NotFoundError):
        store.put_manifest(manifest)
    store.put_blob(second_digest, second)

    uri = store.put_manifest(manifest)

    assert uri == store.package_uri(manifest.digest)
    assert store_target.keys("packages/") == [manifest_key(manifest.digest)]
    assert store.get_manifest(manifest.digest) == manifest


# -- idempotent puts ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_putting_the_same_blob_twice_sends_it_once(
    store_target: StoreTarget, tmp_path: Path, size: int
) -> None:
    store = store_target.open()
    path, digest = blob_file(tmp_path, size)

    assert store.put_blob(digest, path) == size
    assert store.put_blob(digest, path) == 0
    assert store_target.open().put_blob(digest, path) == 0  # another store object, same place

    assert (store.stats.blobs_sent, store.stats.blob_bytes_sent) == (1, size)
    assert list(store.list_blobs()) == [(digest, size)]


def test_publishing_the_same_package_twice_changes_nothing(
    store_target: StoreTarget, model: Path
) -> None:
    first = upload(model, store_target.open())
    before = {key: store_target.read_raw(key) for key in store_target.keys("")}

    store = store_target.open()
    second = upload(model, store)
    again = store.put_manifest(store.get_manifest(first.digest))

    assert second.digest == first.digest and again == first.uri
    assert (second.blobs_sent, second.bytes_sent) == (0, 0)
    assert (store.stats.blobs_sent, store.stats.blob_bytes_sent) == (0, 0)
    after = {key: store_target.read_raw(key) for key in store_target.keys("")}
    assert after == before


# -- what the store holds: list_blobs, missing_blobs, blob_size, has_package -------------------


def test_an_empty_store_holds_nothing(store_target: StoreTarget) -> None:
    store = store_target.open()
    digest = sha256(b"anything")

    assert list(store.list_blobs()) == []
    assert store.missing_blobs([digest]) == {digest}
    assert store.missing_blobs([]) == set()
    assert not store.has_package(digest)
    with pytest.raises(NotFoundError):
        store.blob_size(digest)
    with pytest.raises(NotFoundError):
        store.open_blob(digest)
    with pytest.raises(PackageNotFoundError, match=f"no package sha256:{digest}"):
        store.get_manifest(digest)


def test_a_name_that_is_not_a_digest_is_not_found(store_target: StoreTarget) -> None:
    store = store_target.open()
    for name in ("../../etc/passwd", "ABC", "a" * 63):
        with pytest.raises(NotFoundError, match="not a sha256 digest"):
            store.open_blob(name)
        with pytest.raises(NotFoundError, match="not a sha256 digest"):
            store.missing_blobs([name])


def test_list_blobs_lists_blobs_only(
    store_target: StoreTarget, model: Path, tmp_path: Path
) -> None:
    store = store_target.open()
    result = upload(model, store)
    manifest = store.get_manifest(result.digest)
    sizes = {entry.sha256: entry.size for entry in manifest.files}
    damaged = big_digest(model)
    store_target.write_raw(blob_key(damaged), b"damaged")
    with pytest.raises(DigestMismatchError):  # moved to quarantine/: not a blob any more
        store.read_blob(damaged, tmp_path / "x")

    listed = sorted(store.list_blobs())

    assert listed == sorted((d, s) for d, s in sizes.items() if d != damaged)
    assert store.missing_blobs(sizes) == {damaged}
    for digest, size in listed:
        assert store.blob_size(digest) == size
    assert store.has_package(result.digest)


# -- store verify (mlops_cli.stores.verify) ----------------------------------------------------


def test_verify_finds_damage_without_changing_the_store(
    store_target: StoreTarget, model: Path
) -> None:
    store = store_target.open()
    result = upload(model, store)
    intact = verify_store(store)
    assert (intact.blobs, intact.bytes, intact.damaged) == (
        result.blobs_total,
        result.bytes_total,
        [],
    )
    digest = big_digest(model)
    store_target.write_raw(blob_key(digest), b"tampered")

    report = verify_store(store_target.open())

    [bad] = report.damaged
    assert (bad.digest, bad.actual, bad.quarantined) == (digest, sha256(b"tampered"), None)
    assert report.unrepaired == [bad] and report.repair is False
    assert store_target.read_raw(blob_key(digest)) == b"tampered", "verify alone moved a blob"
    assert store_target.keys("quarantine/") == []


def test_verify_with_repair_quarantines_and_the_next_upload_restores(
    store_target: StoreTarget, model: Path
) -> None:
    first = upload(model, store_target.open())
    digest = big_digest(model)
    store_target.write_raw(blob_key(digest), b"tampered")

    repaired = verify_store(store_target.open(), repair=True)

    [bad] = repaired.damaged
    assert bad.quarantined is not None and bad.quarantined.startswith(
        f"quarantine/sha256/{digest}."
    )
    assert repaired.unrepaired == []
    assert store_target.keys("quarantine/") == [bad.quarantined]
    assert store_target.read_raw(bad.quarantined) == b"tampered"
    clean = verify_store(store_target.open())
    assert (clean.blobs, clean.damaged) == (first.blobs_total - 1, [])

    again = upload(model, store_target.open())
    assert again.blobs_sent == 1
    restored = verify_store(store_target.open())
    assert (restored.blobs, restored.bytes, restored.damaged) == (
        first.blobs_total,
        first.bytes_total,
        [],
    )


def test_verify_of_an_empty_store(store_target: StoreTarget) -> None:
    report = verify_store(store_target.open(), repair=True)
    assert (report.blobs, report.bytes, report.damaged) == (0, 0, [])
