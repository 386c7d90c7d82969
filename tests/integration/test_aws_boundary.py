"""The AWS boundary against real servers: S3 prefixes on moto, and a fleet whose repository is
on S3 next to a REAL tritonserver. An S3 failure is one translated line (exit 1, never
"internal error"), and a failed S3 clean-up never hides Triton's own error."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_cli import aws as aws_boundary  # `aws` is the moto fixture
from mlops_cli.aws import S3Prefix
from mlops_cli.cli.main import main
from tests.cli import error_line, run
from tests.conftest import FIXTURES

pytestmark = pytest.mark.integration

MiB = 1 << 20


# -- the S3 prefix helper on moto ---------------------------------------------------------------


def test_prefix_operations_on_moto(aws: Any, tmp_path: Path) -> None:
    from mlops_cli.aws import client

    client("s3").create_bucket(Bucket="models")
    prefix = S3Prefix("s3://models/team")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * MiB))  # above the part size: a multipart upload
    progress: list[int] = []
    assert prefix.put_file("m/big.bin", big, on_bytes=progress.append) == 9 * MiB
    assert sum(progress) == 9 * MiB and len(progress) == 2
    prefix.put_bytes("m/config.pbtxt", b"name: 'm'")
    head = prefix.head("m/big.bin")
    assert head is not None and head.size == 9 * MiB
    assert prefix.head("m/absent") is None
    assert prefix.get("m/config.pbtxt") == b"name: 'm'"
    prefix.download("m/big.bin", tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()
    assert sorted(o.name for o in prefix.list_objects()) == ["m/big.bin", "m/config.pbtxt"]
    assert prefix.delete_folder("m") == 2
    assert prefix.delete_folder("m") == 0  # idempotent
    prefix.delete("m/absent")  # idempotent
    assert list(prefix.list_objects()) == []


def test_a_missing_bucket_is_translated_with_a_hint(aws: Any) -> None:
    from mlops_cli.errors import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        S3Prefix("s3://no-such-bucket/x").put_bytes("a", b"1")
    assert "bucket no-such-bucket does not exist" in caught.value.message
    assert caught.value.hint == "create it first: aws s3 mb s3://no-such-bucket"


def test_the_per_service_endpoint_is_the_one_used(
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS_ENDPOINT_URL points nowhere; AWS_ENDPOINT_URL_S3 at moto: S3 calls succeed."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    from mlops_cli.aws import client, reset_clients

    reset_clients()
    client("s3").create_bucket(Bucket="models")
    S3Prefix("s3://models/p").put_bytes("a", b"1")
    assert S3Prefix("s3://models/p").get("a") == b"1"


# -- a fleet whose repository is on S3 ---------------------------------------------------------


@pytest.fixture
def fleet_env(local_triton: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's real tritonserver (its own repository is a local folder), a registry and
    a store of the test's own, and ``tiny`` registered."""
    monkeypatch.setenv("MLOPS_REGISTRY", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    return local_triton


def fleet_file(tmp_path: Path, server: Any, repository: str) -> Path:
    path = tmp_path / "fleet.yaml"
    url = server.read_state().http_url
    path.write_text(
        f"name: s3-fleet\nrepository: {repository}\nservers:\n"
        f"  - {{name: s, url: '{url}', memory_mb: 1000}}\n"
    )
    return path


def ready_models(server: Any) -> set[str]:
    from tests.conftest import triton_request

    index = triton_request(server.read_state().http_url, "/v2/repository/index", {}) or []
    return {e["name"] for e in index if e.get("state") == "READY"}  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_fleet_repository_in_a_missing_bucket_is_one_translated_line(
    aws: Any,
    fleet_env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = fleet_file(tmp_path, fleet_env, "s3://no-such-bucket/triton")
    run(capsys, "register", str(FIXTURES / "models" / "tiny"), "--alias", "production")
    line = error_line(capsys, "deploy", "tiny", "--target", "triton", "--fleet", str(fleet), code=1)
    assert "internal error" not in line
    assert (
        "bucket no-such-bucket does not exist" in line and "aws s3 mb s3://no-such-bucket" in line
    )
    assert ready_models(fleet_env) == set()
    assert run(capsys, "status")["deployments"] == []


@pytest.fixture
def deployer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto server of this test's own that checks IAM (after the setup's 4 requests: the
    bucket ``models``, the user ``deployer``, its policy and its key), whose user may do
    write what :func:`become_deployer` allows."""
    from tests.servers.moto import MotoServer

    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "4")
    with MotoServer().start() as strict:
        for name, value in strict.env().items():
            monkeypatch.setenv(name, value)
        aws_boundary.reset_clients()
        iam = aws_boundary.client("iam")
        aws_boundary.client("s3").create_bucket(Bucket="models")
        iam.create_user(UserName="deployer")
        yield strict, iam
    aws_boundary.reset_clients()


def become_deployer(iam: Any, monkeypatch: pytest.MonkeyPatch, actions: list[str]) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName="deployer", PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    aws_boundary.reset_clients()


LIST_AND_READ = ["s3:ListBucket", "s3:ListObjects", "s3:ListObjectsV2", "s3:GetObject"]


@pytest.mark.slow
def test_access_denied_on_the_fleet_repository_is_one_translated_line(
    deployer: Any,
    fleet_env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, iam = deployer
    become_deployer(iam, monkeypatch, LIST_AND_READ)
    fleet = fleet_file(tmp_path, fleet_env, "s3://models/triton")
    run(capsys, "register", str(FIXTURES / "models" / "tiny"), "--alias", "production")
    line = error_line(capsys, "deploy", "tiny", "--target", "triton", "--fleet", str(fleet), code=1)
    assert "internal error" not in line
    assert "AWS refused the credentials for s3://models/triton/tiny-v1/" in line
    assert "(hint: " in line
    assert ready_models(fleet_env) == set()


@pytest.mark.slow
def test_a_failed_s3_cleanup_does_not_hide_tritons_error(
    deployer: Any,
    fleet_env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The model is written to S3, but this Triton serves another repository, so it refuses to
    load it; the clean-up then may not delete (the user has no s3:Delete*). Triton's refusal is
    the error; the clean-up's failure is a note (shown with --verbose)."""
    _, iam = deployer
    become_deployer(iam, monkeypatch, [*LIST_AND_READ, "s3:PutObject"])
    fleet = fleet_file(tmp_path, fleet_env, "s3://models/triton")
    run(capsys, "register", str(FIXTURES / "models" / "tiny"), "--alias", "production")

    code = main(["deploy", "tiny", "--target", "triton", "--fleet", str(fleet), "-v"])
    err = capsys.readouterr().err
    assert code == 1, err
    said = " ".join(err.split())  # the console may wrap long notes
    assert "internal error" not in said
    error = said[said.rindex("error: ") :]  # the one error line comes last
    assert error.startswith("error: Triton server s could not load tiny-v1: failed to load")
    assert "s3" not in error.lower() and "AccessDenied" not in error
    assert "tiny-v1 was not removed from s3://models/triton" in said  # the note says why
    assert "AccessDenied" in said
    left = {o.name for o in S3Prefix("s3://models/triton").list_objects()}
    assert "tiny-v1/config.pbtxt" in left  # the clean-up really failed
    assert ready_models(fleet_env) == set()
