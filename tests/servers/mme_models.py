"""Model folders and ``model.tar.gz`` files for the SageMaker MME tests and benchmark.

A model is a ``sagemaker-mms`` folder laid out as a SageMaker framework container loads it, with a
``model.json`` saying its name, version and scale; it answers
``{"model", "version", "outputs": [x * scale, ...]}``, so every answer tells which version served it.
Its ``layout``:

- ``service`` (default): ``handler.py`` (a copy of ``tests/servers/mms_handler.py``) named by
  ``MAR-INF/MANIFEST.json``, which multi-model-server runs in place of its default handler;
- ``toolkit``: ``code/inference.py`` (a copy of ``tests/servers/mms_toolkit_inference.py``) with
  ``model_fn`` and ``transform_fn``, run by the inference toolkit's handler service;
- ``foreign``: ``handler.py`` with no manifest: what the framework containers do not run (the
  toolkit finds no ``code/inference.py``), for the tests that it is refused.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

HANDLER = Path(__file__).resolve().with_name("mms_handler.py")
TOOLKIT = Path(__file__).resolve().with_name("mms_toolkit_inference.py")


def make_model(
    root: Path,
    name: str,
    *,
    version: int = 1,
    scale: float = 1.0,
    memory_mb: float = 64,
    fail_on_invoke: bool = False,
    fail_on_input: float | None = None,
    gpu: bool = False,
    layout: str = "service",
) -> Path:
    """Write a model folder ``root/<name>-v<version>`` and return it."""
    from mlops_cli.render.sagemaker_layout import mar_manifest

    folder = root / f"{name}-v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    resources = f"resources:\n  memory_mb: {memory_mb:g}\n"
    if gpu:
        resources += "  gpu: {count: 1, kind: nvidia-a10g}\n"
    entrypoint = "code/inference.py" if layout == "toolkit" else "handler.py"
    (folder / "mlops.yaml").write_text(
        f"name: {name}\n"
        "runtime: sagemaker-mms\n"
        f"entrypoint: {entrypoint}\n"
        "inputs:\n  - {name: inputs, dtype: FP32, shape: [-1]}\n"
        "outputs:\n  - {name: outputs, dtype: FP32, shape: [-1]}\n" + resources
    )
    if layout == "toolkit":
        (folder / "code").mkdir(exist_ok=True)
        shutil.copyfile(TOOLKIT, folder / "code" / "inference.py")
    else:
        shutil.copyfile(HANDLER, folder / "handler.py")
    if layout == "service":
        (folder / "MAR-INF").mkdir(exist_ok=True)
        (folder / "MAR-INF" / "MANIFEST.json").write_bytes(mar_manifest("handler:handle"))
    spec = {
        "name": name,
        "version": version,
        "scale": scale,
        "fail_on_invoke": fail_on_invoke,
        "fail_on_input": fail_on_input,
    }
    (folder / "model.json").write_text(json.dumps(spec))
    return folder


def stored_package(folder: Path, store: Any) -> Any:
    """``folder`` as a package in ``store`` (an ArtifactStore), stored WITHOUT the upload's
    checks: what another tool or a hand-edited store could hold. Returns its manifest."""
    import hashlib

    from mlops_cli.packages.manifest import FileEntry, PackageManifest

    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        store.put_blob(digest, path)
        relative = path.relative_to(folder).as_posix()
        entries.append(FileEntry(path=relative, size=path.stat().st_size, sha256=digest))
    manifest = PackageManifest(name=folder.name, files=tuple(entries))
    store.put_manifest(manifest)
    return manifest


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
