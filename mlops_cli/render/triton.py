"""The Triton model repository layout of a package::

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/<every package file>   (model.py among them)

``config.pbtxt`` is built as a ``ModelConfig`` protobuf and printed with ``text_format``, never
from string templates.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops_cli.packages.manifest import PackageManifest
from mlops_cli.progress import SILENT, Reporter, running
from mlops_cli.render.common import EXEC_MODE, FILE_MODE, FIXED_MTIME, package_spec
from mlops_cli.spec.modelspec import ModelSpec, TensorSpec
from mlops_cli.stores.base import ArtifactStore
from mlops_cli.workspace import write_atomic


def _tensor(message: Any, tensor: TensorSpec, data_type: Any) -> None:
    message.name = tensor.name
    message.data_type = data_type.Value(
        f"TYPE_{'STRING' if tensor.dtype == 'BYTES' else tensor.dtype}"
    )
    message.dims.extend(tensor.shape)


MEMORY_PARAMETER = "mlops.memory_mb"
_PB_MODULE = "tritonclient.grpc.model_config_pb2"


def model_config_pb2() -> Any:
    """Triton's ``model_config_pb2`` (generated protobuf code that needs only protobuf).

    Importing it the usual way runs ``tritonclient.grpc``'s package init first, which pulls in
    grpc and numpy (~0.1 s of every deploy); loading the one generated file on its own avoids that.
    """
    module = sys.modules.get(_PB_MODULE)
    if module is not None:
        return module
    if "tritonclient.grpc" in sys.modules:
        from tritonclient.grpc import model_config_pb2 as pb

        return pb
    package = importlib.util.find_spec("tritonclient")
    locations = list(package.submodule_search_locations or []) if package else []
    if not locations:
        from tritonclient.grpc import model_config_pb2 as pb  # let the import error speak

        return pb
    spec = importlib.util.spec_from_file_location(
        _PB_MODULE, Path(locations[0]) / "grpc" / "model_config_pb2.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PB_MODULE] = module
    spec.loader.exec_module(module)
    return module


def model_config(
    spec: ModelSpec, *, model_name: str, device: str | None = None, memory_mb: float | None = None
) -> Any:
    """The ``ModelConfig`` of ``spec``; ``device`` ("gpu"/"cpu") overrides what the spec asks;
    ``memory_mb`` is kept as a config parameter, so placement can read it back from a server."""
    pb = model_config_pb2()
    use_gpu = spec.wants_gpu if device is None else device == "gpu"
    config = pb.ModelConfig(
        name=model_name, backend="python", max_batch_size=spec.batching.max_batch_size
    )
    for tensor in spec.inputs:
        _tensor(config.input.add(), tensor, pb.DataType)
    for tensor in spec.outputs:
        _tensor(config.output.add(), tensor, pb.DataType)
    group = config.instance_group.add()
    group.count = spec.instances
    if use_gpu:
        group.kind = pb.ModelInstanceGroup.KIND_GPU
        gpus = spec.resources.gpu.count if spec.resources.gpu else 1
        group.gpus.extend(range(gpus))
    else:
        group.kind = pb.ModelInstanceGroup.KIND_CPU
    if spec.batching.dynamic:
        config.dynamic_batching.preferred_batch_size.extend(spec.batching.preferred_batch_sizes)
        config.dynamic_batching.max_queue_delay_microseconds = spec.batching.max_queue_delay_us
    if spec.streaming:
        config.model_transaction_policy.decoupled = True
    memory = memory_mb if memory_mb is not None else spec.resources.memory_mb
    if memory is not None:
        config.parameters[MEMORY_PARAMETER].string_value = f"{memory:g}"
    for warmup in spec.warmup:
        sample = config.model_warmup.add(
            name=warmup.name, batch_size=warmup.batch_size, count=warmup.count
        )
        for tensor in spec.inputs:
            data = sample.inputs[tensor.name]
            data.data_type = pb.DataType.Value(
                f"TYPE_{'STRING' if tensor.dtype == 'BYTES' else tensor.dtype}"
            )
            data.dims.extend(1 if dim < 0 else dim for dim in tensor.shape)
            if warmup.data == "random" and tensor.dtype != "BYTES":
                data.random_data = True
            else:
                data.zero_data = True
    return config


def config_pbtxt(
    spec: ModelSpec, *, model_name: str, device: str | None = None, memory_mb: float | None = None
) -> str:
    from google.protobuf import text_format

    config = model_config(spec, model_name=model_name, device=device, memory_mb=memory_mb)
    return str(text_format.MessageToString(config))


def render_triton(
    store: ArtifactStore,
    manifest: PackageManifest,
    repository: Path,
    *,
    model_name: str | None = None,
    version: int = 1,
    device: str | None = None,
    memory_mb: float | None = None,
    reporter: Reporter = SILENT,
) -> Path:
    """Write the package as ``<repository>/<model_name>/<version>/`` plus ``config.pbtxt``.

    The version folder is assembled beside its final place and renamed into it, so a server never
    sees half a version. Returns the model folder.
    """
    spec = package_spec(store, manifest)
    name = model_name or spec.name
    model_dir = repository / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}."))
    try:
        with running(
            reporter, f"rendering {name} v{version}", total=manifest.total_bytes, unit="bytes"
        ) as task:
            for entry in manifest.files:
                target = staging / entry.path
                store.read_blob(entry.sha256, target, on_bytes=task.advance)
                os.chmod(target, EXEC_MODE if entry.executable else FILE_MODE)
                os.utime(target, (FIXED_MTIME, FIXED_MTIME))
        for folder in sorted({p for p in staging.rglob("*") if p.is_dir()}, reverse=True):
            os.utime(folder, (FIXED_MTIME, FIXED_MTIME))
        final = model_dir / str(version)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    config = model_dir / "config.pbtxt"
    write_atomic(
        config, config_pbtxt(spec, model_name=name, device=device, memory_mb=memory_mb).encode()
    )
    os.chmod(config, FILE_MODE)
    os.utime(config, (FIXED_MTIME, FIXED_MTIME))
    return model_dir
