"""Model folders and ``model.tar.gz`` files for the SageMaker MME tests and benchmark.

A model is a ``sagemaker-mms`` folder: ``mlops.yaml``, ``handler.py`` (a copy of
``tests/servers/mms_handler.py``) and ``model.json`` saying its name, version and scale; it answers
``{"model", "version", "outputs": [x * scale, ...]}``, so every answer tells which version served it.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

HANDLER = Path(__file__).resolve().with_name("mms_handler.py")


def make_model(
    root: Path,
    name: str,
    *,
    version: int = 1,
    scale: float = 1.0,
    memory_mb: float = 64,
    fail_on_invoke: bool = False,
    gpu: bool = False,
) -> Path:
    """Write a model folder ``root/<name>-v<version>`` and return it."""
    folder = root / f"{name}-v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    resources = f"resources:\n  memory_mb: {memory_mb:g}\n"
    if gpu:
        resources += "  gpu: {count: 1, kind: nvidia-a10g}\n"
    (folder / "mlops.yaml").write_text(
        f"name: {name}\n"
        "runtime: sagemaker-mms\n"
        "entrypoint: handler.py\n"
        "inputs:\n  - {name: inputs, dtype: FP32, shape: [-1]}\n"
        "outputs:\n  - {name: outputs, dtype: FP32, shape: [-1]}\n" + resources
    )
    shutil.copyfile(HANDLER, folder / "handler.py")
    spec = {"name": name, "version": version, "scale": scale, "fail_on_invoke": fail_on_invoke}
    (folder / "model.json").write_text(json.dumps(spec))
    return folder


def tarball_bytes(folder: Path) -> bytes:
    """``folder`` as a gzip tarball with paths relative to it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


def evil_tarball(escape_name: str) -> bytes:
    """A tarball with one good file and one member whose name climbs out (``../<escape>``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("mlops.yaml", b"name: evil\n"), (f"../{escape_name}", b"owned\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def answer(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data
