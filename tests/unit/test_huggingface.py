"""hf:// sources, resolved offline by huggingface_hub's own functions from a cache laid out on disk
the way the hub client lays it out, holding a real small safetensors model made here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def make_weights() -> dict[str, bytes]:
    np = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(7)
    tensors = {
        "embed.weight": rng.standard_normal((32, 8), dtype=np.float32),
        "head.weight": rng.standard_normal((8, 3), dtype=np.float32),
        "head.bias": np.zeros(3, dtype=np.float32),
    }
    return {
        "model.safetensors": safetensors_numpy.save(tensors),
        "config.json": json.dumps({"hidden": 8, "labels": 3}).encode(),
        "README.md": b"# tiny\nA tiny model for tests.\n",
    }


def lay_out_cache(cache: Path, repo: str, commits: dict[str, dict[str, bytes]], main: str) -> None:
    """The hub client's cache layout: content-addressed blobs, snapshots of relative symlinks."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(main)
    for commit, files in commits.items():
        snapshot = root / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for name, data in files.items():
            digest = hashlib.sha256(data).hexdigest()
            (root / "blobs" / digest).write_bytes(data)
            os.symlink(f"../../blobs/{digest}", snapshot / name)


@pytest.fixture
def hf_cache(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = make_weights()
    older = {**files, "model.safetensors": b"older weights"}
    lay_out_cache(
        tmp_path / "hf", "acme/tiny-classifier", {COMMIT: files, OLD_COMMIT: older}, main=COMMIT
    )
    return tmp_path / "hf", files


def mlops(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_upload_hf_revision_resolves_offline_and_pins_the_commit(
    hf_cache: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    cache, files = hf_cache
    store = (tmp_path / "store").as_uri()
    result = mlops(cache, "upload", "hf://acme/tiny-classifier@main", "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    uploaded = json.loads(result.stdout)
    assert uploaded["name"] == "acme--tiny-classifier"
    assert uploaded["source"] == {
        "type": "huggingface",
        "repo": "acme/tiny-classifier",
        "revision": "main",
        "commit": COMMIT,
    }
    shown = json.loads(mlops(cache, "package", "show", uploaded["uri"], "--json").stdout)
    assert {f["path"]: f["sha256"] for f in shown["files"]} == {
        name: hashlib.sha256(data).hexdigest() for name, data in files.items()
    }

    pinned = mlops(
        cache, "upload", f"hf://acme/tiny-classifier@{OLD_COMMIT}", "--store", store, "--json"
    )
    assert pinned.returncode == 0, pinned.stderr
    old = json.loads(pinned.stdout)
    assert old["source"]["commit"] == OLD_COMMIT and old["digest"] != uploaded["digest"]
    assert old["blobs_sent"] == 1, "only the weights differ between the two commits"


def test_folder_with_hf_source_and_allow_patterns(
    hf_cache: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    cache, _ = hf_cache
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    spec = folder / "mlops.yaml"
    spec.write_text(
        spec.read_text().replace("weights: [weights/*.bin]\n", "")
        + "source:\n  uri: hf://acme/tiny-classifier@main\n  allow_patterns: ['*.safetensors', '*.json']\n"
    )
    result = mlops(cache, "upload", str(folder), "--store", (tmp_path / "store").as_uri(), "--json")
    assert result.returncode == 0, result.stderr
    uploaded = json.loads(result.stdout)
    shown = json.loads(mlops(cache, "package", "show", uploaded["uri"], "--json").stdout)
    paths = sorted(f["path"] for f in shown["files"])
    assert paths == [
        "config.json",
        "mlops.yaml",
        "model.py",
        "model.safetensors",
        "weights/small.bin",
    ]
    assert uploaded["source"]["commit"] == COMMIT

    (folder / "config.json").write_text("{}")
    clash = mlops(cache, "upload", str(folder), "--store", (tmp_path / "store").as_uri())
    assert (
        clash.returncode == 2 and "config.json is both in the folder and in hf://" in clash.stderr
    )


def test_unknown_repository_is_one_clear_line(
    hf_cache: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    cache, _ = hf_cache
    result = mlops(
        cache, "upload", "hf://acme/missing@main", "--store", (tmp_path / "store").as_uri()
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "hf://acme/missing@main" in lines[0] and "cache" in lines[0], lines
    assert not (tmp_path / "store").exists()


def test_malformed_hf_uri(tmp_path: Path) -> None:
    result = mlops(tmp_path, "upload", "hf://just-a-name", "--store", (tmp_path / "s").as_uri())
    assert result.returncode == 2 and "hf://org/name@revision" in result.stderr
