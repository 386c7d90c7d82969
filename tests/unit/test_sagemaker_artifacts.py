"""Issue 15 without servers: the SageMaker tarball per runtime (the layout its container loads,
reproducible, refused when the container could not load it), the image table and the pairings
refused at plan time, the warmup requests, and the archive limits of mme-local's extraction.

The same artifacts are loaded by the real containers in
``tests/integration/test_sagemaker_artifacts_containers.py``."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.deploy.sagemaker_images import (
    IncompatibleImageError,
    check_pairing,
    choose_image,
    classify_image,
    instance_memory_mb,
)
from mlops_cli.deploy.sagemaker_warmup import warmup_inputs
from mlops_cli.mme.extract import ArchiveLimits, ArchiveTooLargeError, extract_tarball
from mlops_cli.render.sagemaker import publish_tarball
from mlops_cli.render.sagemaker_layout import LayoutError, mar_manifest
from mlops_cli.spec.modelspec import ModelSpec
from mlops_cli.stores.local import LocalStore
from tests.conftest import FIXTURES
from tests.servers.mme_models import make_model, stored_package

pytestmark = pytest.mark.unit


def published(tmp_path: Path, folder: Path, *, device: str | None = None) -> Path:
    store = LocalStore(tmp_path / "store")
    manifest = stored_package(folder, store)  # no upload checks: the render's are tested
    out = tmp_path / "out" / f"{folder.name}-{device}.tar.gz"
    publish_tarball(store, manifest, str(out), device=device)
    return out


def members(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
        }


# -- item 1: the layout each runtime's container loads ---------------------------------------


def test_a_triton_tarball_is_one_repository_entry_with_gpu_groups_when_asked(
    tmp_path: Path,
) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    folder = tmp_path / "answer"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    files = members(published(tmp_path, folder, device="gpu"))
    assert set(files) == {
        "answer/config.pbtxt",
        "answer/1/mlops.yaml",
        "answer/1/model.py",
        "answer/1/weights/answer.txt",
    }
    config = text_format.Parse(files["answer/config.pbtxt"].decode(), pb.ModelConfig())
    assert config.name == "answer" and config.backend == "python"
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    cpu = members(published(tmp_path, folder, device="cpu"))["answer/config.pbtxt"]
    parsed = text_format.Parse(cpu.decode(), pb.ModelConfig())
    assert parsed.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU


def test_the_tarball_is_reproducible_and_package_render_writes_the_same_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli import run

    folder = tmp_path / "answer"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    first = published(tmp_path / "a", folder).read_bytes()
    assert published(tmp_path / "b", folder).read_bytes() == first
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'cli-store'}")
    out = tmp_path / "rendered.tar.gz"
    run(capsys, "package", "render", str(folder), "--format", "sagemaker", "--out", str(out))
    assert out.read_bytes() == first


def test_a_service_model_gets_the_manifest_multi_model_server_reads(tmp_path: Path) -> None:
    shipped = make_model(tmp_path / "src", "svc")
    assert members(published(tmp_path, shipped))["MAR-INF/MANIFEST.json"] == mar_manifest(
        "handler:handle"
    )
    bare = make_model(tmp_path / "bare", "svc", layout="foreign")  # no manifest of its own
    files = members(published(tmp_path / "b", bare))
    assert json.loads(files["MAR-INF/MANIFEST.json"])["model"]["handler"] == "handler:handle"
    assert {"handler.py", "model.json", "mlops.yaml"} <= set(files)


def test_a_toolkit_model_is_laid_out_for_the_handler_service(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "src", "tk", layout="toolkit")
    files = members(published(tmp_path, folder))
    assert "code/inference.py" in files and not any(n.startswith("MAR-INF") for n in files)


def _edit(folder: Path, path: str, text: str) -> Path:
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return folder


@pytest.mark.parametrize(
    ("layout", "change", "reason"),
    [
        ("foreign", ("handler.py", "def predict(x):\n    return x\n"), "defines no handle"),
        (
            "toolkit",
            ("code/inference.py", "def model_fn(d):\n    return d\n"),
            "defines no transform_fn",
        ),
        (
            "toolkit",
            ("MAR-INF/MANIFEST.json", mar_manifest("handler:handle").decode()),
            "skip the inference toolkit",
        ),
        ("service", ("MAR-INF/MANIFEST.json", mar_manifest("other:handle").decode()), "runs"),
        ("service", ("handler.py", "def handle(:\n"), "does not parse"),
    ],
    ids=[
        "no-handle",
        "toolkit-without-transform_fn",
        "toolkit-with-manifest",
        "wrong-manifest",
        "syntax",
    ],
)
def test_an_mms_package_its_container_could_not_load_is_refused_before_writing(
    tmp_path: Path, layout: str, change: tuple[str, str], reason: str
) -> None:
    folder = _edit(make_model(tmp_path / "src", "bad", layout=layout), *change)
    with pytest.raises(LayoutError, match=reason):
        published(tmp_path, folder)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_handler_in_a_subfolder_is_refused(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "src", "deep", layout="foreign")
    (folder / "pkg").mkdir()
    shutil.move(folder / "handler.py", folder / "pkg" / "handler.py")
    spec = folder / "mlops.yaml"
    spec.write_text(
        spec.read_text().replace("entrypoint: handler.py", "entrypoint: pkg/handler.py")
    )
    with pytest.raises(LayoutError, match="root of the model folder"):
        published(tmp_path, folder)


# -- item 2: the image table and the pairings refused at plan time ----------------------------


def test_the_image_follows_the_runtime_and_the_instance_type() -> None:
    pick: dict[str, Any] = {"region": "eu-west-1", "image_uri": None}
    gpu = choose_image(runtime="triton-python", device="gpu", instance_type="ml.g5.xlarge", **pick)
    cpu = choose_image(runtime="triton-python", device="cpu", instance_type="ml.m5.xlarge", **pick)
    mms = choose_image(runtime="sagemaker-mms", device="cpu", instance_type="ml.c5.xlarge", **pick)
    assert gpu == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"
    assert cpu.endswith("/sagemaker-tritonserver:24.09-py3-cpu")
    assert mms.endswith("/mxnet-inference:1.9.0-cpu-py38")
    assert (classify_image(gpu).container, classify_image(gpu).device) == ("triton", "gpu")
    assert (classify_image(cpu).device, classify_image(mms).container) == ("cpu", "mms")
    assert classify_image("123.dkr.ecr.x.amazonaws.com/mine:1").container is None
    assert instance_memory_mb("ml.g5.xlarge") == 16 * 1024
    assert instance_memory_mb("ml.inf2.xlarge") is None


TRITON_GPU = "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"
TRITON_CPU = TRITON_GPU + "-cpu"
MXNET_CPU = "763104351884.dkr.ecr.us-east-1.amazonaws.com/mxnet-inference:1.9.0-cpu-py38"


@pytest.mark.parametrize(
    ("runtime", "device", "image", "instance", "memory", "reason"),
    [
        ("triton-python", "cpu", MXNET_CPU, "ml.m5.xlarge", 64, "runs in NVIDIA Triton"),
        ("sagemaker-mms", "cpu", TRITON_CPU, "ml.m5.xlarge", 64, "runs in multi-model-server"),
        ("triton-python", "cpu", TRITON_GPU, "ml.m5.xlarge", 64, "built for GPU instances"),
        ("triton-python", "gpu", TRITON_CPU, "ml.g5.xlarge", 64, "built for CPU instances"),
        ("triton-python", "gpu", TRITON_GPU, "ml.m5.xlarge", 64, "asks for a GPU"),
        ("sagemaker-mms", "cpu", MXNET_CPU, "ml.m5.large", 9000, "has 8192 MB"),
    ],
    ids=["triton-on-mms", "mms-on-triton", "cpu-model-gpu-image", "gpu-model-cpu-image",
         "gpu-on-cpu-instance", "too-big"],
)  # fmt: skip
def test_a_pair_the_endpoint_could_never_serve_is_refused_with_the_reason(
    runtime: str, device: Any, image: str, instance: str, memory: float, reason: str
) -> None:
    with pytest.raises(IncompatibleImageError, match=reason):
        check_pairing(
            model="m v1",
            runtime=runtime,
            device=device,
            image=image,
            instance_type=instance,
            memory_mb=memory,
        )


def test_pairs_that_serve_pass() -> None:
    for runtime, device, image, instance in (
        ("triton-python", "gpu", TRITON_GPU, "ml.g5.xlarge"),
        ("triton-python", "cpu", TRITON_GPU, "ml.g5.xlarge"),  # CPU groups run on a GPU host
        ("triton-python", "cpu", TRITON_CPU, "ml.c5.xlarge"),
        ("sagemaker-mms", "cpu", "my.registry/custom:1", "ml.m5.xlarge"),  # a custom image
    ):
        check_pairing(
            model="m v1",
            runtime=runtime,
            device=device,  # type: ignore[arg-type]
            image=image,
            instance_type=instance,
            memory_mb=64,
        )


# -- item 3: the warmup requests ---------------------------------------------------------------


def test_warmup_requests_come_from_the_spec_else_from_its_signature() -> None:
    base = {
        "name": "clf",
        "runtime": "triton-python",
        "entrypoint": "model.py",
        "inputs": [
            {"name": "x", "dtype": "FP32", "shape": [4]},
            {"name": "text", "dtype": "BYTES", "shape": [-1]},
        ],
        "outputs": [{"name": "y", "dtype": "FP32", "shape": [3]}],
    }
    [synthesized] = warmup_inputs(ModelSpec.from_dict(base))
    assert len(synthesized["x"]) == 4 and isinstance(synthesized["text"][0], str)
    spec = ModelSpec.from_dict(
        {
            **base,
            "batching": {"max_batch_size": 8},
            "warmup": [{"name": "zeros", "batch_size": 2, "count": 3}],
        }
    )
    requests = warmup_inputs(spec)
    assert len(requests) == 3
    assert requests[0] == {"x": [[0, 0, 0, 0], [0, 0, 0, 0]], "text": [[""], [""]]}


# -- item 4: archive limits, checked before anything is written ------------------------------


def _bomb(path: Path, *, size: int) -> Path:
    """One member declaring ``size`` bytes of zeros: a few KB per MB once gzipped."""
    with gzip.open(path, "wb", compresslevel=6) as out:
        info = tarfile.TarInfo("weights.bin")
        info.size = size
        out.write(info.tobuf(tarfile.PAX_FORMAT))
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            out.write(block)
        out.write(bytes(-size % 512 + 1024))
    return path


def _many(path: Path, count: int) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for index in range(count):
            archive.addfile(tarfile.TarInfo(f"f{index}"), io.BytesIO(b""))
    return path


@pytest.mark.parametrize(
    ("make", "limits", "reason"),
    [
        (lambda p: _bomb(p, size=64 << 20), ArchiveLimits(max_bytes=32 << 20), "declare more"),
        (lambda p: _bomb(p, size=64 << 20), ArchiveLimits(max_bytes=1 << 30), "ratio above"),
        (lambda p: _many(p, 120), ArchiveLimits(max_bytes=1 << 30, max_members=100), "members"),
    ],
    ids=["declared-size", "compression-ratio", "member-count"],
)
def test_a_bomb_is_refused_in_seconds_with_nothing_written(
    tmp_path: Path, make: Any, limits: ArchiveLimits, reason: str
) -> None:
    archive = make(tmp_path / "bomb.tar.gz")
    assert archive.stat().st_size < 2 << 20
    started = time.monotonic()
    with pytest.raises(ArchiveTooLargeError, match=reason):
        extract_tarball(archive, tmp_path / "out" / "model", what="bomb", limits=limits)
    assert time.monotonic() - started < 3
    assert not (tmp_path / "out").exists()


def test_an_archive_within_its_limits_extracts(tmp_path: Path) -> None:
    archive = _many(tmp_path / "ok.tar.gz", 100)
    limits = ArchiveLimits(max_bytes=1 << 20, max_members=100)
    assert extract_tarball(archive, tmp_path / "out", what="ok", limits=limits) == 0
    assert len(list((tmp_path / "out").iterdir())) == 100
