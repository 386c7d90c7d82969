"""``mlops router`` with bad input, as a user meets it: one error line, the right exit code, and
no server started (a bad ``router serve`` must be refused before anything listens); ``router key
create`` that refuses without touching the keys file; ``router list`` of the routers that
heartbeat into the registry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_cli.cli.main import main
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import NewVersion
from mlops_cli.registry.records import RouterHeartbeat
from tests.cli import error_line, run

pytestmark = pytest.mark.unit


class ServerStarted(BaseException):
    """Raised instead of serving: a BaseException, so no error handler of mlops reports it."""


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test of bad input fails, rather than blocks, if `router serve` gets as far as serving."""

    def tripwire(options: object) -> int:
        raise ServerStarted(f"mlops router serve started a server: {options}")

    monkeypatch.setattr("mlops_cli.router.serve.serve", tripwire)
    yield


@pytest.fixture
def registry_uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    open_registry(uri).init()
    return uri


def serve_line(capsys: pytest.CaptureFixture[str], *args: str, code: int = 2) -> str:
    return error_line(capsys, "router", "serve", "--trust-tenant-header", *args, code=code)


# -- router serve --------------------------------------------------------------------------------


def test_serve_needs_keys_or_a_trusted_tenant_header(
    capsys: pytest.CaptureFixture[str], registry_uri: str
) -> None:
    line = error_line(capsys, "router", "serve", "--registry", registry_uri, code=2)
    assert "--keys" in line and "--trust-tenant-header" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--workers", "0"), "--workers must be between 1 and 64"),
        (("--workers", "65"), "--workers must be between 1 and 64"),
        (("--port", "70000"), "--port must be between 0 and 65535"),
        (("--port", "-1"), "--port must be between 0 and 65535"),
        (("--refresh", "0"), "--refresh must be between"),
        (("--refresh", "nan"), "--refresh must be between"),
        (("--refresh", "inf"), "--refresh must be between"),
        (("--refresh", "61"), "--refresh must be between"),
        (("--upstream-timeout", "0"), "--upstream-timeout must be between"),
        (("--idle-timeout", "-inf"), "--idle-timeout must be between"),
        (("--max-body", "0"), "--max-body must be between 1 byte and 1 GiB"),
        (("--max-body", "lots"), "--max-body 'lots' is not a size"),
        (("--max-body", "2GiB"), "--max-body must be between 1 byte and 1 GiB"),
        (("--max-body", "6 tb"), "--max-body '6 tb' is not a size"),
        pytest.param(
            ("--max-body", "²MiB"), "--max-body '²MiB' is not a size", id="superscript-size"
        ),
        (("--tenant-label", "top:0"), "--tenant-label 'top:0' is not all, none or top:N"),
        (("--tenant-label", "top:x"), "--tenant-label 'top:x' is not all, none or top:N"),
        pytest.param(
            ("--tenant-label", "top:²"),
            "--tenant-label 'top:²' is not all, none or top:N",
            id="superscript-top",
        ),
        (("--tenant-header", "a b"), "--tenant-header 'a b' is not a header name"),
        (("--tenant-header", ""), "--tenant-header '' is not a header name"),
        (("--workers", "many"), "--workers"),  # not a number: the command line's own error
    ],
)
def test_serve_refuses_bad_options_before_serving(
    capsys: pytest.CaptureFixture[str],
    registry_uri: str,
    args: tuple[str, ...],
    words: str,
) -> None:
    line = serve_line(capsys, *args, "--registry", registry_uri)
    assert line.startswith("error: ") and words in line


def test_serve_refuses_a_missing_keys_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = tmp_path / "absent.yaml"
    line = error_line(capsys, "router", "serve", "--keys", str(keys), code=2)
    assert f"keys file {keys} does not exist" in line and "router key create" in line
    assert not keys.exists()


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("folder", "unable to open database file"),
        ("not-a-database", "file is not a database"),
        ("bad-uri", "bad SQLite registry URI"),
        ("unknown-scheme", "unsupported registry URI"),
    ],
)
def test_serve_with_a_registry_it_cannot_use_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, setup: str, words: str
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite\n", encoding="utf-8")
    uri = {
        "folder": f"sqlite:///{tmp_path}",
        "not-a-database": f"sqlite:///{junk}",
        "bad-uri": "sqlite://host/registry.db",
        "unknown-scheme": "ftp://registry",
    }[setup]

    assert main(["router", "serve", "--trust-tenant-header", "--registry", uri]) in (1, 2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines
    assert "internal error" not in lines[0]


def test_serve_with_a_registry_in_a_folder_that_does_not_exist_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mistyped registry path must not start a router on a new, empty registry (nor create
    the folder): it serves nothing, and no deploy would ever see its heartbeats."""
    missing = tmp_path / "no-such-folder" / "registry.db"

    code = main(["router", "serve", "--trust-tenant-header", "--registry", f"sqlite:///{missing}"])

    lines = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1, lines
    assert str(missing) in lines[0] and "internal error" not in lines[0]
    assert not missing.parent.exists()


def test_serve_with_an_unreachable_dynamodb_registry_is_one_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlops_cli.aws import reset_clients

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset_clients()
    try:
        line = serve_line(capsys, "--registry", "dynamodb://mlops-registry", code=1)
    finally:
        reset_clients()
    assert "cannot reach http://127.0.0.1:9" in line and "hint:" in line


# -- router key create -------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["Bad Name", "_acme", "a" * 129, "acme/../x"])
def test_key_create_refuses_a_bad_tenant_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tenant: str
) -> None:
    keys = tmp_path / "keys.yaml"
    line = error_line(capsys, "router", "key", "create", tenant, "--keys", str(keys), code=2)
    assert "invalid tenant name" in line
    assert not keys.exists()


@pytest.mark.parametrize(
    "text",
    [
        "keys: 3\n",
        "- not a mapping\n",
        "keys:\n  - tenant: acme\n",
        f"keys:\n  - tenant: acme\n    sha256: {'0' * 63}\n",
        "keys: [\n",
    ],
)
def test_key_create_into_an_invalid_keys_file_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    keys = folder / "keys.yaml"
    keys.write_text(text, encoding="utf-8")

    line = error_line(capsys, "router", "key", "create", "acme", "--keys", str(keys), code=2)

    assert str(keys) in line
    assert keys.read_text(encoding="utf-8") == text
    assert [p.name for p in folder.iterdir()] == ["keys.yaml"]  # no temporary left behind


def test_key_create_prints_the_key_once_and_stores_its_hash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys.yaml"
    made = run(capsys, "router", "key", "create", "acme", "--keys", str(keys))

    assert made["tenant"] == "acme" and made["keys_file"] == str(keys)
    assert made["key"] not in keys.read_text(encoding="utf-8")
    assert main(["router", "key", "create", "globex", "--keys", str(keys)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("mlk_") and "\n" not in printed


# -- router list ---------------------------------------------------------------------------------


def test_list_with_no_routers_is_empty(
    capsys: pytest.CaptureFixture[str], registry_uri: str
) -> None:
    assert run(capsys, "router", "list", "--registry", registry_uri) == {
        "registry_revision": 0,
        "routers": [],
    }
    assert main(["router", "list", "--registry", registry_uri]) == 0
    assert capsys.readouterr().out.strip() == "no live routers"


def test_list_shows_live_routers_and_not_stale_ones(
    capsys: pytest.CaptureFixture[str], registry_uri: str
) -> None:
    registry = open_registry(registry_uri)
    registry.register_version("answer", NewVersion("a" * 64, "file:///answer"))
    revision = registry.registry_revision()
    now = time.time()
    live = RouterHeartbeat(
        router_id="host-a:101:abc",
        applied_revision=revision - 1,
        in_flight={"answer@1": 2, "answer@2": 0},
        at=now,
        address="127.0.0.1:8700",
        started_at=now - 60,
    )
    registry.record_heartbeat(live)
    registry.record_heartbeat(
        RouterHeartbeat(router_id="host-b:7:def", applied_revision=revision, in_flight={}, at=0.5)
    )

    listed = run(capsys, "router", "list", "--registry", registry_uri)

    assert listed == {
        "registry_revision": revision,
        "routers": [
            {
                "router_id": "host-a:101:abc",
                "applied_revision": revision - 1,
                "in_flight": {"answer@1": 2},
                "at": now,
                "address": "127.0.0.1:8700",
                "started_at": now - 60,
            }
        ],
    }
    assert main(["router", "list", "--registry", registry_uri]) == 0
    table = capsys.readouterr().out
    assert "host-a:101:abc" in table and f"{revision - 1} (behind)" in table
    assert "host-b" not in table
