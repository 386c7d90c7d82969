"""The Triton layout: config.pbtxt built through model_config_pb2 and parsed back; reproducible."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from mlops_cli.packages.upload import upload
from mlops_cli.render.triton import config_pbtxt, render_triton
from mlops_cli.spec.modelspec import ModelSpec
from mlops_cli.stores.local import LocalStore
from tests.conftest import FIXTURES

pytestmark = pytest.mark.unit

BASE = {
    "name": "clf",
    "runtime": "triton-python",
    "entrypoint": "model.py",
    "inputs": [
        {"name": "features", "dtype": "FP32", "shape": [4]},
        {"name": "text", "dtype": "BYTES", "shape": [-1]},
    ],
    "outputs": [{"name": "probabilities", "dtype": "FP32", "shape": [3]}],
}


def parse(text: str) -> object:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_gpu_spec_gets_gpu_instance_groups_batching_and_warmup() -> None:
    from tritonclient.grpc import model_config_pb2 as pb

    spec = ModelSpec.from_dict(
        {
            **BASE,
            "batching": {
                "max_batch_size": 16,
                "dynamic": True,
                "preferred_batch_sizes": [4, 8],
                "max_queue_delay_us": 250,
            },
            "resources": {"memory_mb": 512, "gpu": {"count": 2, "kind": "nvidia-a10g"}},
            "instances": 3,
            "warmup": [{"name": "zeros", "batch_size": 2, "count": 5}],
        }
    )
    config = parse(config_pbtxt(spec, model_name="clf"))
    assert config.name == "clf" and config.backend == "python"  # type: ignore[attr-defined]
    assert config.max_batch_size == 16  # type: ignore[attr-defined]
    (group,) = config.instance_group  # type: ignore[attr-defined]
    assert (
        group.kind == pb.ModelInstanceGroup.KIND_GPU
        and group.count == 3
        and list(group.gpus) == [0, 1]
    )
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]  # type: ignore[attr-defined]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250  # type: ignore[attr-defined]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [  # type: ignore[attr-defined]
        ("features", pb.TYPE_FP32, [4]),
        ("text", pb.TYPE_STRING, [-1]),
    ]
    (warmup,) = config.model_warmup  # type: ignore[attr-defined]
    assert (warmup.name, warmup.batch_size, warmup.count) == ("zeros", 2, 5)
    assert list(warmup.inputs["text"].dims) == [1], "variable dims become 1 for warmup data"
    assert warmup.inputs["features"].zero_data
    assert not config.model_transaction_policy.decoupled  # type: ignore[attr-defined]


def test_cpu_serving_overrides_the_spec_and_streaming_is_decoupled() -> None:
    from tritonclient.grpc import model_config_pb2 as pb

    spec = ModelSpec.from_dict({**BASE, "streaming": True, "resources": {"gpu": {"count": 1}}})
    config = parse(config_pbtxt(spec, model_name="gen", device="cpu"))
    (group,) = config.instance_group  # type: ignore[attr-defined]
    assert group.kind == pb.ModelInstanceGroup.KIND_CPU and list(group.gpus) == []
    assert config.model_transaction_policy.decoupled  # type: ignore[attr-defined]
    assert not config.HasField("dynamic_batching")  # type: ignore[attr-defined]
    plain = parse(config_pbtxt(ModelSpec.from_dict(BASE), model_name="clf"))
    assert plain.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU  # type: ignore[attr-defined]


def test_layout_is_reproducible(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "models" / "tiny", folder)
    os.chmod(folder / "model.py", 0o700)
    store = LocalStore(tmp_path / "store")
    manifest = store.get_manifest(upload(folder, store).digest)

    def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
        return {
            p.relative_to(root).as_posix(): (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mode & 0o777,
                int(p.stat().st_mtime),
            )
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = render_triton(store, manifest, tmp_path / "repo-a", version=4, device="cpu")
    b = render_triton(store, manifest, tmp_path / "repo-b", version=4, device="cpu")
    assert snapshot(a) == snapshot(b)
    files = snapshot(a)
    assert set(files) == {"config.pbtxt", "4/mlops.yaml", "4/model.py", "4/weights/small.bin"}
    assert files["4/model.py"][1] == 0o755 and files["4/mlops.yaml"][1] == 0o644
    assert {mtime for _, _, mtime in files.values()} == {946684800}
    assert not [p for p in a.iterdir() if p.name.startswith(".")], "staging folder left behind"
