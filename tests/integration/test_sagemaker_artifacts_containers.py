"""Issue 15, item 1 on real containers, with no mme-local in between: the ``model.tar.gz`` that
``mlops`` publishes, extracted as the SageMaker agent extracts it, is loaded as it is by the
server the SageMaker image runs, and answers its sample request.

- ``triton-python``: a REAL tritonserver (the session's local Triton) whose model repository
  receives the extracted tarball unchanged: its own ``config.pbtxt``, its ``1/`` folder.
- ``sagemaker-mms``: a REAL multi-model-server with the SageMaker inference toolkit's handler
  service as its default service, in multi-model mode, as the framework containers run it: a
  custom-service tarball (``MAR-INF``) and a toolkit one (``code/inference.py``) both answer; a
  tarball of neither kind is refused with the toolkit's own message.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.render.sagemaker import publish_tarball
from mlops_cli.stores.local import LocalStore
from tests.conftest import FIXTURES, require, triton_request
from tests.servers.mme_models import make_model, stored_package, tarball_bytes

pytestmark = pytest.mark.integration


def rendered(tmp_path: Path, folder: Path, *, device: str | None = None) -> Path:
    """The folder published as ``mlops`` publishes it, then extracted as the agent does."""
    store = LocalStore(tmp_path / "store")
    tarball = tmp_path / f"{folder.name}.tar.gz"
    publish_tarball(store, stored_package(folder, store), str(tarball), device=device)
    return extracted(tarball, tmp_path / "extracted" / folder.name)


def extracted(tarball: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return into


def test_a_triton_tarball_loads_unchanged_in_a_real_triton_and_answers(
    local_triton: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "answer"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    (folder / "weights" / "answer.txt").write_text("42\n")
    entry = rendered(tmp_path, folder, device="cpu")
    state = local_triton.read_state()
    shutil.copytree(entry / "answer", Path(state.model_repository) / "answer")  # as it is
    url = state.http_url
    triton_request(url, "/v2/repository/models/answer/load", {})
    try:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}
        answer: Any = triton_request(url, "/v2/models/answer/infer", body)
        assert answer["outputs"][0]["data"] == [42.0, 42.0]
        config: Any = triton_request(url, "/v2/models/answer/config")
        assert config["instance_group"][0]["kind"] == "KIND_CPU"
    finally:
        triton_request(url, "/v2/repository/models/answer/unload", {})


@pytest.fixture(scope="module")
def mms_container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mlops_cli.mme.containers import MMSContainer, mme_extra_missing

    missing = mme_extra_missing()
    require(missing is None, f"the mme extra is not installed ({missing})")
    container = MMSContainer(tmp_path_factory.mktemp("mms")).start()
    try:
        yield container
    finally:
        container.stop()


@pytest.mark.parametrize("layout", ["service", "toolkit"])
def test_an_mms_tarball_answers_in_multi_model_server_with_the_toolkit(
    mms_container: Any, tmp_path: Path, layout: str
) -> None:
    folder = make_model(tmp_path / "src", f"m-{layout}", scale=3.0, layout=layout)
    model_dir = rendered(tmp_path, folder)
    mms_container.load(f"m-{layout}", model_dir)
    try:
        reply = mms_container.invoke(
            f"m-{layout}", json.dumps({"inputs": [1.0, 2.0]}).encode(), "application/json", ""
        )
        assert reply.status == 200, reply.body
        assert json.loads(reply.body) == {
            "model": f"m-{layout}",
            "version": 1,
            "outputs": [3.0, 6.0],
        }
    finally:
        mms_container.unload(f"m-{layout}")


def test_a_foreign_mms_tarball_is_refused_with_the_toolkits_message(
    mms_container: Any, tmp_path: Path
) -> None:
    """A handler.py with no manifest: the handler service looks for code/inference.py."""
    folder = make_model(tmp_path / "src", "foreign", layout="foreign")
    tarball = tmp_path / "foreign.tar.gz"
    tarball.write_bytes(tarball_bytes(folder))  # put together by hand, not by mlops
    mms_container.load("foreign", extracted(tarball, tmp_path / "x"))
    try:
        reply = mms_container.invoke("foreign", b'{"inputs": [1]}', "application/json", "")
        assert reply.status == 500
        assert "import_module exception: No module named 'inference'" in reply.body.decode()
    finally:
        mms_container.unload("foreign")
