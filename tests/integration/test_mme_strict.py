"""Issue 15 through mme-local, end to end: moto for S3, the mme-local server (as `mlops local up
--mme` starts it) with its REAL containers (multi-model-server with the SageMaker inference
toolkit's handler service; a tritonserver of its own), and boto3's sagemaker-runtime client with
``TargetModel``.

What is shown: each runtime's tarball, as `mlops` publishes it, answers through boto3; a tarball
put in the prefix by hand that SageMaker's container would refuse is refused with that container's
own message; a deploy whose version cannot load exits 1 with that message, leaves the alias where
it was and shows FAILED in `mlops status`; bombs are refused in seconds with nothing written; a
runtime the endpoint's container cannot run is refused at plan time; a retired version stops
answering; with the model cache off a model is unloaded once answered; `local up --mme` without
the extra is one line."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_cli.aws import client
from tests.cli import error_line, run
from tests.conftest import FIXTURES, require
from tests.servers.mme_models import make_model, stored_package, tarball_bytes

pytestmark = pytest.mark.integration

BUCKET = "mme-strict"
TRITON_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}


@pytest.fixture(scope="module")
def mme_server(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mlops_cli.mme.containers import mme_extra_missing
    from tests.servers.mme_local import running_mme_local

    missing = mme_extra_missing()
    require(missing is None, f"the mme extra is not installed ({missing})")
    with running_mme_local(moto_server, tmp_path_factory.mktemp("mme-strict") / ".mlops") as mme:
        yield mme


@pytest.fixture
def env(aws: Any, mme_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.servers.mme_local import point_at

    point_at(mme_server, tmp_path, monkeypatch)
    client("s3").create_bucket(Bucket=BUCKET)
    return mme_server


def endpoint_file(tmp_path: Path, name: str, backend: str, **extra: Any) -> Path:
    local = {"backend": backend, "memory_budget_mb": 1024, **extra.pop("local", {})}
    document = {"name": name, "s3_prefix": f"s3://{BUCKET}/{name}/", "local": local, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def deploy_args(ref: str, endpoint: Path) -> list[str]:
    return ["deploy", ref, "--target", "mme-local", "--endpoint", str(endpoint), "--drain", "0"]


def runtime() -> Any:
    import boto3

    return boto3.client("sagemaker-runtime", region_name="us-east-1")


def invoke(endpoint: str, target: str, body: Any) -> Any:
    response = runtime().invoke_endpoint(
        EndpointName=endpoint,
        TargetModel=target,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
    )
    return json.loads(response["Body"].read())


def refusal(endpoint: str, target: str, body: Any) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        invoke(endpoint, target, body)
    response: dict[str, Any] = caught.value.response
    return response


def state(server: Any, name: str) -> dict[str, Any]:
    from mlops_cli.local.mme import http_json

    found: dict[str, Any] = http_json(f"{server.url()}/mme/endpoints/{name}")
    return found


def register_endpoint(server: Any, name: str, backend: str, **budgets: Any) -> None:
    from mlops_cli.local.mme import http_json

    body = {"s3_prefix": f"s3://{BUCKET}/{name}/", "backend": backend, **budgets}
    http_json(f"{server.url()}/mme/endpoints/{name}", method="PUT", body=body)


def put(key: str, data: bytes) -> None:
    client("s3").put_object(Bucket=BUCKET, Key=key, Body=data)


def answer_folder(tmp_path: Path, value: int) -> Path:
    folder = tmp_path / f"answer-{value}"
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    (folder / "weights" / "answer.txt").write_text(f"{value}\n")
    return folder


# -- each runtime, as published, answers through boto3 with TargetModel ------------------------


def test_each_runtimes_tarball_answers_through_boto3_with_target_model(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_cli.render.sagemaker import publish_tarball
    from mlops_cli.stores.local import LocalStore

    run(capsys, "register", str(answer_folder(tmp_path, 42)))
    run(capsys, *deploy_args("answer@1", endpoint_file(tmp_path, "tri", "triton")))
    assert invoke("tri", "answer-v1.tar.gz", TRITON_BODY)["outputs"][0]["data"] == [42.0, 42.0]

    run(capsys, "register", str(make_model(tmp_path / "src", "svc", scale=2.0)))
    run(capsys, *deploy_args("svc@1", endpoint_file(tmp_path, "mms", "mms")))
    assert invoke("mms", "svc-v1.tar.gz", {"inputs": [1.5]})["outputs"] == [3.0]

    # The toolkit layout, published by the same render (`mlops register` does not take it yet).
    store = LocalStore(tmp_path / "toolkit-store")
    manifest = stored_package(make_model(tmp_path / "tk", "tk", scale=5.0, layout="toolkit"), store)
    publish_tarball(store, manifest, f"s3://{BUCKET}/mms/tk-v1.tar.gz")
    assert invoke("mms", "tk-v1.tar.gz", {"inputs": [2]}) == {
        "model": "tk",
        "version": 1,
        "outputs": [10.0],
    }
    models = state(env, "mms")["models"]
    assert (models["tk-v1.tar.gz"]["loads"], models["svc-v1.tar.gz"]["invocations"]) == (1, 2)


def test_a_tarball_put_by_hand_that_the_container_refuses_fails_with_its_own_message(
    env: Any, tmp_path: Path
) -> None:
    register_endpoint(env, "hand-tri", "triton")
    put("hand-tri/flat-v1.tar.gz", tarball_bytes(answer_folder(tmp_path, 7)))  # the package, flat
    error = refusal("hand-tri", "flat-v1.tar.gz", TRITON_BODY)
    assert error["Error"]["Code"] == "ModelError"
    assert "failed to poll from model repository" in error["Error"]["Message"]  # Triton's words

    register_endpoint(env, "hand-mms", "mms")
    put("hand-mms/foreign-v1.tar.gz", tarball_bytes(make_model(tmp_path, "f", layout="foreign")))
    error = refusal("hand-mms", "foreign-v1.tar.gz", {"inputs": [1]})
    assert error["Error"]["Code"] == "ModelError" and error["OriginalStatusCode"] == 500
    assert "import_module exception: No module named 'inference'" in error["OriginalMessage"]


# -- deployed means answering ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["triton", "mms"])
def test_a_deploy_whose_model_cannot_load_keeps_the_alias_and_status_shows_failed(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    endpoint = endpoint_file(tmp_path, f"fail-{backend}", backend)
    if backend == "triton":
        good, bad = answer_folder(tmp_path, 1), FIXTURES / "models" / "broken"
        name, words, body = "answer", "broken on purpose: weights missing", '{"x": [1]}'
    else:
        good = make_model(tmp_path / "a", "m", version=1)
        bad = make_model(tmp_path / "b", "m", version=2, fail_on_invoke=True)
        name, words, body = "m", "configured to fail", '{"inputs": [1]}'
    run(capsys, "register", str(good))
    run(capsys, "register", str(bad))
    run(capsys, *deploy_args(f"{name}@1", endpoint))

    line = error_line(capsys, *deploy_args(f"{name}@2", endpoint), code=1)
    assert words in line and "alias was not moved" in line
    assert run(capsys, "invoke", name, "--input", body)["version"] == 1  # the alias stayed
    prefix = client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"fail-{backend}/")["Contents"]
    assert [o["Key"] for o in prefix] == [f"fail-{backend}/{name}-v1.tar.gz"]  # v2's is gone
    rows = run(capsys, "status", code=1)["deployments"]
    assert [(r["version"], r["state"]) for r in rows] == [(1, "READY"), (2, "FAILED")]
    assert words in rows[1]["note"]


# -- archive limits: bombs refused in seconds, nothing written -------------------------------


def zeros_bomb(size: int) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as out:
        info = tarfile.TarInfo("weights.bin")
        info.size = size
        out.write(info.tobuf(tarfile.PAX_FORMAT))
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            out.write(block)
        out.write(bytes(1024))
    return buffer.getvalue()


def many_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(count):
            archive.addfile(tarfile.TarInfo(f"f{index}"), io.BytesIO(b""))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "disk_mb", "words"),
    [
        (lambda: zeros_bomb(256 << 20), 64, "declare more than"),
        (lambda: zeros_bomb(96 << 20), 4096, "decompression bomb"),
        (lambda: many_members(10_001), 4096, "more than 10000 members"),
    ],
    ids=["declared-size", "compression-ratio", "member-count"],
)
def test_a_bomb_is_refused_in_seconds_with_nothing_written(
    env: Any, archive: Any, disk_mb: float, words: str
) -> None:
    register_endpoint(env, "bombs", "mms", disk_budget_mb=disk_mb)
    data = archive()
    assert len(data) < 1 << 20  # well under a MB compressed
    put("bombs/bomb-v1.tar.gz", data)
    workdir = Path(env.workdir)
    started = time.monotonic()
    error = refusal("bombs", "bomb-v1.tar.gz", {"inputs": [1]})
    assert time.monotonic() - started < 5
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 507
    assert words in error["Error"]["Message"] and "Nothing was written" in error["Error"]["Message"]
    assert [p for p in (workdir / "models").rglob("*") if "bomb" in p.name] == []
    assert list((workdir / "downloads").iterdir()) == []
    assert state(env, "bombs")["disk_used_mb"] == 0


# -- plan time, retire, cache, the extra ------------------------------------------------------


def test_a_runtime_the_endpoints_container_cannot_run_is_refused_at_plan_time(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "register", str(answer_folder(tmp_path, 3)))
    line = error_line(capsys, *deploy_args("answer@1", endpoint_file(tmp_path, "w", "mms")), code=2)
    assert "triton-python model, which runs in NVIDIA Triton" in line
    assert "runs multi-model-server" in line
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix="w/")
    assert listed.get("Contents", []) == []


def test_a_retired_version_stops_answering_and_an_uncached_model_is_unloaded(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = endpoint_file(tmp_path, "nocache", "mms", model_cache=False)
    for version in (1, 2):
        run(capsys, "register", str(make_model(tmp_path / f"v{version}", "m", version=version)))
    run(capsys, *deploy_args("m@1", endpoint))
    assert state(env, "nocache")["model_cache"] is False
    assert invoke("nocache", "m-v1.tar.gz", {"inputs": [1]})["version"] == 1
    deadline = time.monotonic() + 10
    while state(env, "nocache")["loaded"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state(env, "nocache")["loaded"] == []  # unloaded once answered
    assert state(env, "nocache")["models"]["m-v1.tar.gz"]["loads"] == 2  # warmup, then the call

    assert run(capsys, *deploy_args("m@2", endpoint))["retired"] == [1]
    line = error_line(capsys, "invoke", "m@1", "--input", '{"inputs": [1]}', code=1)
    assert "not deployed" in line
    error = refusal("nocache", "m-v1.tar.gz", {"inputs": [1]})
    assert "Failed to download model data" in error["Error"]["Message"]
    assert invoke("nocache", "m-v2.tar.gz", {"inputs": [1]})["version"] == 2


def test_local_up_mme_without_the_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()  # the toolkit made unimportable, as in an environment without the extra
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['sagemaker_inference'] = None\n"
    )
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hide), str(Path(__file__).resolve().parents[2])]),
        "MLOPS_WORKSPACE": str(tmp_path / "ws"),
    }
    command = [sys.executable, "-m", "mlops_cli", "local", "up", "--mme"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=120
        )
    finally:  # should it have started anyway, leave nothing running
        down = [*command[:-2], "down", "--mme"]
        subprocess.run(down, capture_output=True, env=environ, cwd=tmp_path, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'mme' extra" in lines[0] and "sagemaker-inference" in lines[0]
    assert not (tmp_path / "ws" / "local" / "mme.json").exists()
