"""The router's API keys (:mod:`mlops_cli.router.auth`): only hashes are stored, and a keys file
that cannot be used is one clear :class:`KeysFileError`, also through ``mlops router serve``
(which then starts nothing); and its metrics (:mod:`mlops_cli.router.metrics`): bounded tenant
labels and an exposition that holds the counts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_cli.errors import UsageError
from mlops_cli.router.auth import KEY_PREFIX, KeysFileError, create_key, key_digest, read_keys
from mlops_cli.router.metrics import OTHER, RouterMetrics, TenantLabelMode, TenantLabels
from mlops_cli.validation import MAX_YAML_BYTES
from tests.cli import error_line
from tests.cli.test_router_cli import no_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.unit

DIGEST = "ab" * 32


# -- keys --------------------------------------------------------------------------------------


def test_create_key_stores_only_the_hash_and_read_keys_maps_it_back(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    path = folder / "keys.yaml"

    acme = create_key(path, "acme")
    globex = create_key(path, "globex")

    text = path.read_text(encoding="utf-8")
    assert acme.startswith(KEY_PREFIX) and len(acme) > len(KEY_PREFIX) + 40
    assert acme not in text and globex not in text
    assert acme[len(KEY_PREFIX) :] not in text
    assert key_digest(acme) in text and key_digest(globex) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = read_keys(path)
    assert keys.tenants == {key_digest(acme): "acme", key_digest(globex): "globex"}
    assert (keys.tenant_of(acme), keys.tenant_of(globex)) == ("acme", "globex")
    assert keys.tenant_of(acme + "x") is None
    assert keys.tenant_of(key_digest(acme)) is None  # the stored hash is not a key
    assert [p.name for p in folder.iterdir()] == ["keys.yaml"]  # no temporary left behind


def test_an_empty_keys_file_has_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("", encoding="utf-8")
    assert read_keys(path).tenants == {}
    path.write_text("keys: []\n", encoding="utf-8")
    assert read_keys(path).tenants == {}


# (file text, words the error must say)
BAD_KEYS: dict[str, tuple[str, str]] = {
    "a list": ("- tenant: acme\n", "mapping with one key"),
    "a scalar": ("just words\n", "mapping with one key"),
    "an extra key": ("keys: []\nsalt: x\n", "mapping with one key"),
    "keys not a list": ("keys: {acme: 1}\n", "must be a list"),
    "an entry not a mapping": ("keys:\n  - acme\n", "keys[0]: each entry has exactly"),
    "no sha256": ("keys:\n  - tenant: acme\n", "exactly `tenant` and `sha256`"),
    "an extra field": (
        f"keys:\n  - tenant: acme\n    sha256: {DIGEST}\n    note: x\n",
        "exactly `tenant` and `sha256`",
    ),
    "a short digest": (f"keys:\n  - tenant: acme\n    sha256: {DIGEST[:-1]}\n", "64 hex digits"),
    "a digest not hex": (
        f"keys:\n  - tenant: acme\n    sha256: {'g' + DIGEST[1:]}\n",
        "64 hex digits",
    ),
    "a duplicate": (
        f"keys:\n  - tenant: acme\n    sha256: {DIGEST}\n"
        f"  - tenant: globex\n    sha256: {DIGEST.upper()}\n",
        "keys[1]: the same key is listed twice",
    ),
    "a bad tenant": (f"keys:\n  - tenant: Bad Name\n    sha256: {DIGEST}\n", "invalid tenant"),
    "bad YAML": ("keys: [\n", "keys.yaml:2:1: malformed YAML"),
    "too large": ("#" * (MAX_YAML_BYTES + 1), f"more than the {MAX_YAML_BYTES} allowed"),
}


def write_bad(tmp_path: Path, case: str) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    path = tmp_path / "keys" / "keys.yaml"
    path.write_text(BAD_KEYS[case][0], encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_a_bad_keys_file_is_one_clear_error(tmp_path: Path, case: str) -> None:
    path = write_bad(tmp_path, case)

    with pytest.raises(KeysFileError) as raised:
        read_keys(path)

    message = str(raised.value)
    assert str(path) in message and BAD_KEYS[case][1] in message
    assert "\n" not in message


def test_a_keys_file_that_cannot_be_read_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "keys.yaml"
    folder.mkdir()
    with pytest.raises(KeysFileError, match="cannot read"):
        read_keys(folder)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"keys: \xff\xfe\n")
    with pytest.raises(KeysFileError, match=r"binary\.yaml"):
        read_keys(binary)
    with pytest.raises(UsageError, match="does not exist"):
        read_keys(tmp_path / "absent.yaml")


@pytest.mark.usefixtures("no_server")
@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_serve_with_a_bad_keys_file_exits_2_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    path = write_bad(tmp_path, case)
    database = tmp_path / "r.db"
    registry = f"sqlite:///{database}"

    line = error_line(
        capsys, "router", "serve", "--keys", str(path), "--registry", registry, code=2
    )

    assert str(path) in line and BAD_KEYS[case][1] in line
    assert not database.exists()


def test_create_key_refuses_to_add_to_a_bad_keys_file_and_leaves_it_unchanged(
    tmp_path: Path,
) -> None:
    for case in ("a duplicate", "no sha256", "an extra key"):
        path = write_bad(tmp_path, case)
        before = path.read_bytes()
        with pytest.raises(KeysFileError):
            create_key(path, "acme")
        assert path.read_bytes() == before
        assert os.listdir(path.parent) == ["keys.yaml"]


# -- tenant labels -------------------------------------------------------------------------------


def test_tenant_labels_all_none_and_top_n() -> None:
    everyone = TenantLabels(TenantLabelMode.parse("all"))
    assert [everyone(t) for t in ("acme", "globex", "initech")] == ["acme", "globex", "initech"]

    nobody = TenantLabels(TenantLabelMode.parse("none"))
    assert {nobody(t) for t in ("acme", "globex")} == {OTHER}

    top = TenantLabels(TenantLabelMode.parse("top:2"))
    seen = [top(t) for t in ("acme", "globex", "initech", "acme", "hooli", "globex", "initech")]
    assert seen == ["acme", "globex", OTHER, "acme", OTHER, "globex", OTHER]
    assert TenantLabelMode.parse("top:100000") == TenantLabelMode("top", 100_000)


@pytest.mark.parametrize(
    "text",
    [
        "top:0",
        "top:x",
        "foo",
        "top:",
        "top:-1",
        "top:1.5",
        "top:100001",
        "ALL",
        pytest.param("top:²", id="superscript-top"),  # isdigit() is true, int() refuses it
    ],
)
def test_tenant_label_mode_refuses_anything_else(text: str) -> None:
    with pytest.raises(UsageError, match="is not all, none or top:N"):
        TenantLabelMode.parse(text)


# -- metrics -------------------------------------------------------------------------------------


def samples(metrics: RouterMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_the_exposition_holds_the_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = RouterMetrics(TenantLabelMode.parse("top:1"))
    for _ in range(3):
        metrics.answered("acme", "answer", "2", 200, 0.01)
    metrics.answered("globex", "answer", "1", 200, 0.02)
    metrics.answered("initech", "answer", "", 404, None)
    metrics.started("answer", "2")
    metrics.started("answer", "2")
    metrics.finished("answer", "2")
    metrics.upstream_error("answer", "2", "refused")
    metrics.retried("answer", "2")
    metrics.first("answer", "2", 0.005)
    metrics.table(41, 0.3)

    found = samples(metrics)

    def requests(tenant: str, version: str, status: str) -> float:
        labels = (("model", "answer"), ("status", status), ("tenant", tenant), ("version", version))
        return found[("mlops_router_requests_total", labels)]

    assert requests("acme", "2", "200") == 3
    assert requests(OTHER, "1", "200") == 1  # top:1: only acme keeps its name
    assert requests(OTHER, "", "404") == 1
    assert not any(dict(labels).get("tenant") in ("globex", "initech") for _, labels in found)
    version_2 = (("model", "answer"), ("version", "2"))
    assert found[("mlops_router_request_seconds_count", version_2)] == 3
    assert found[("mlops_router_request_seconds_sum", version_2)] == pytest.approx(0.03)
    assert found[("mlops_router_first_chunk_seconds_count", version_2)] == 1
    assert found[("mlops_router_in_flight", version_2)] == 1
    assert found[("mlops_router_retries_total", version_2)] == 1
    kind = (("kind", "refused"), ("model", "answer"), ("version", "2"))
    assert found[("mlops_router_upstream_errors_total", kind)] == 1
    assert found[("mlops_router_table_revision", ())] == 41
    assert found[("mlops_router_table_age_seconds", ())] == pytest.approx(0.3)

    metrics.table(41, float("inf"))  # never loaded: shown as -1, not +Inf
    assert samples(metrics)[("mlops_router_table_age_seconds", ())] == -1
