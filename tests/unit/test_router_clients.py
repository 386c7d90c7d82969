"""The router's clients on plain inputs: the tenants a perftest sends as (lists, files and their
limits, API keys files), the distributions and the seeded draw over 10,000 requests, the per-tenant
figures of a report (all in JSON, the busiest 20 on screens), and the flags both commands refuse
with exit 2 before any request is sent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.errors import UsageError, ValidationError
from mlops_cli.perf import report, report_text
from mlops_cli.perf.engine import StepRecord
from mlops_cli.perf.load_options import LoadOptions
from mlops_cli.perf.router_wire import parse_version
from mlops_cli.perf.runner import build_document
from mlops_cli.perf.summary import summarize_step
from mlops_cli.perf.targets import TargetSpec, TenantTraffic
from mlops_cli.perf.tenants import (
    MAX_TENANTS,
    MAX_TENANTS_FILE_BYTES,
    parse_tenants,
    read_api_keys,
    tenant_traffic,
)
from mlops_cli.perf.traffic import WeightedDraw, traffic_weights
from mlops_cli.perf.windows import WindowStats
from tests.cli import error_line

pytestmark = pytest.mark.unit

# -- tenants -------------------------------------------------------------------------------------


def test_tenants_come_from_a_list_or_a_file_in_order(tmp_path: Path) -> None:
    assert parse_tenants(" acme, globex ,initech") == ("acme", "globex", "initech")
    listed = tmp_path / "tenants.txt"
    listed.write_text("# our tenants\nacme\n\n  globex  \n#initech\nt-3.x_y\n")
    assert parse_tenants(f"@{listed}") == ("acme", "globex", "t-3.x_y")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "--tenants: no tenant given"),
        (" , ,", "--tenants: no tenant given"),
        ("acme,globex,acme", "--tenants: tenant 'acme' is listed twice"),
        ("acme,bad tenant", "--tenants: 'bad tenant' is not a tenant name"),
        ("acme,../etc", "--tenants: '../etc' is not a tenant name"),
    ],
)
def test_malformed_tenant_lists_are_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_tenants(value)
    assert refused.value.message.startswith(message)
    assert refused.value.exit_code == 2


def test_a_tenants_file_is_bounded_in_size_and_count(tmp_path: Path) -> None:
    many = tmp_path / "many.txt"
    many.write_text("".join(f"t{i}\n" for i in range(MAX_TENANTS)))
    assert len(parse_tenants(f"@{many}")) == MAX_TENANTS
    many.write_text("".join(f"t{i}\n" for i in range(MAX_TENANTS + 1)))
    with pytest.raises(UsageError, match="100,001 tenants, more than the 100,000 allowed"):
        parse_tenants(f"@{many}")

    big = tmp_path / "big.txt"
    big.write_bytes(b"acme\n" + b"#" * MAX_TENANTS_FILE_BYTES)
    with pytest.raises(UsageError, match="is over 8 MiB"):
        parse_tenants(f"@{big}")
    with pytest.raises(UsageError, match="cannot read"):
        parse_tenants(f"@{tmp_path / 'missing.txt'}")
    (tmp_path / "binary.txt").write_bytes(b"acme\n\xff\xfe\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        parse_tenants(f"@{tmp_path / 'binary.txt'}")


def test_api_keys_map_each_tenant_to_its_key_in_the_tenants_order(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("globex: mlk_g\nacme: mlk_a\n")
    assert read_api_keys(keys) == {"globex": "mlk_g", "acme": "mlk_a"}

    traffic = tenant_traffic("acme,globex", "zipf:1.2", f"@{keys}")
    assert traffic == TenantTraffic(("acme", "globex"), "zipf:1.2", ("mlk_a", "mlk_g"))
    assert tenant_traffic(None, None, f"@{keys}") == TenantTraffic(
        ("globex", "acme"), "uniform", ("mlk_g", "mlk_a")
    )
    assert tenant_traffic("acme", None, None) == TenantTraffic(("acme",), "uniform", None)
    assert tenant_traffic(None, None, None) is None
    with pytest.raises(UsageError, match="no key for tenant 'initech'"):
        tenant_traffic("acme,initech", None, f"@{keys}")
    with pytest.raises(UsageError, match="--tenant-distribution needs tenants"):
        tenant_traffic(None, "zipf:1.1", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- acme\n- globex\n", "maps each tenant to its key"),
        ("{}", "maps each tenant to its key"),
        ("acme: two words\n", "the key of 'acme' is not one word of printable ASCII"),
        ("acme: [1, 2]\n", "the key of 'acme' is not one word"),
        ("acme: k\nbad tenant: k\n", "'bad tenant' is not a tenant name"),
        ("acme: [unclosed\n", "malformed YAML"),
    ],
)
def test_a_malformed_api_keys_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        read_api_keys(keys)


def test_an_api_keys_file_is_read_within_the_yaml_bound(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text("{" + ", ".join(f'"t{i}": "mlk_{i:060d}"' for i in range(5000)) + "}")
    with pytest.raises(ValidationError, match="more than the 262144 allowed"):
        read_api_keys(keys)
    with pytest.raises(UsageError, match="does not exist"):
        read_api_keys(tmp_path / "none.yaml")


# -- distributions and the draw -----------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["zipf:0", "zipf:0.0", "zipf:abc", "zipf:", "zipf:-1", "zipf:nan", "zipf:1e3", "pareto"]
)
def test_a_malformed_distribution_is_refused_naming_its_option(word: str) -> None:
    with pytest.raises(UsageError) as refused:
        traffic_weights(3, word, option="--tenant-distribution")
    assert refused.value.message == f"--tenant-distribution: unknown distribution '{word}'"


def test_zipf_weighs_rank_r_as_one_over_r_to_the_s() -> None:
    assert traffic_weights(3, "uniform") == [1.0, 1.0, 1.0]
    assert traffic_weights(3, "zipf:2") == pytest.approx([1.0, 1 / 4, 1 / 9])
    assert traffic_weights(100_000, "zipf:1000")[-1] == 0.0  # underflows, no OverflowError


@pytest.mark.parametrize("distribution", ["uniform", "zipf:1.1", "zipf:2"])
def test_10000_draws_follow_the_distribution(distribution: str) -> None:
    weights = traffic_weights(5, distribution)
    draw = WeightedDraw(weights, seed="tenants-0")
    counts = Counter(draw() for _ in range(10_000))
    assert set(counts) == set(range(5))
    for index, weight in enumerate(weights):
        assert counts[index] / 10_000 == pytest.approx(weight / sum(weights), abs=0.015)


def test_the_draw_is_the_same_for_a_seed_and_differs_across_seeds() -> None:
    weights = traffic_weights(50, "zipf:1.1")
    first, again, other = (WeightedDraw(weights, seed=s) for s in ("a", "a", "b"))
    sequence = [first() for _ in range(500)]
    assert sequence == [again() for _ in range(500)]
    assert sequence != [other() for _ in range(500)]
    single = WeightedDraw([1.0], seed=0)
    assert {single() for _ in range(100)} == {0}


def test_the_version_header_is_a_version_number_or_nothing() -> None:
    assert parse_version(b"2") == 2 and parse_version(" 17 ") == 17
    for value in (None, b"", b"v2", b"-1", b"0", b"1.5", "٣", b"12345678901"):
        assert parse_version(value) is None


# -- the report ----------------------------------------------------------------------------------

OPTIONS = LoadOptions(mode="closed", levels=(4,), requests=100)


def _document(
    per_tenant: dict[tuple[int, int, int], list[int]], names: list[str]
) -> dict[str, Any]:
    window = WindowStats(0)
    ok = sum(counts[0] for counts in per_tenant.values())
    failed = sum(counts[1] for counts in per_tenant.values())
    for _ in range(ok):
        window.latency.record(1000)
    window.ok = window.completed = ok
    window.errors = {"http_502": failed} if failed else {}
    window.per_model = {0: [ok, failed, ok * 1000]}
    for (_, model, version), (good, bad) in per_tenant.items():
        if version >= 0:
            counts = window.per_version.setdefault((model, version), [0, 0])
            counts[0] += good
            counts[1] += bad
    # through the workers' wire format, as a multi-process run merges them
    window = WindowStats.from_dict(
        window.to_dict() | {"per_tenant": [[*k, *v] for k, v in per_tenant.items()]}
    )
    step = summarize_step(
        label="concurrency=4",
        level=4,
        options=OPTIONS,
        records=[StepRecord([window], sent=ok + failed, cpu_ns=0, measured_ns=10**9, aborted=None)],
        last_window=None,
        models=["answer"],
        stream=False,
        tenants=names,
    )
    spec = TargetSpec(
        protocol="router",
        url="router://127.0.0.1:8700",
        models=("answer",),
        tenants=TenantTraffic(tuple(names), "zipf:1.1"),
    )
    return build_document(spec, OPTIONS, [step], [], None, datetime.now(UTC))


def test_requests_and_errors_are_counted_per_tenant_and_per_version_served() -> None:
    doc = _document(
        {(0, 0, 1): [30, 0], (1, 0, 2): [18, 2], (1, 0, -1): [0, 5]}, ["acme", "globex"]
    )
    step = doc["steps"][0]
    assert step["per_tenant"] == {
        "acme": {"requests": 30, "errors": 0, "versions": {"answer@1": 30}},
        "globex": {"requests": 25, "errors": 7, "versions": {"answer@2": 20}},
    }
    assert step["per_model"]["answer"]["versions"] == {"1": 30, "2": 20}
    assert step["per_model"]["answer"]["version_errors"] == {"1": 0, "2": 2}
    assert doc["target"]["tenants"] == {
        "count": 2,
        "distribution": "zipf:1.1",
        "auth": "tenant-header",
    }
    report.validate_report(doc)
    markdown = report.to_markdown(doc)
    assert "answer served by v1 30, v2 20 (2 failed)" in markdown
    assert "| concurrency=4 | globex | 25 | 7 | answer@2 20 |" in markdown


def test_screens_show_the_20_busiest_tenants_and_the_rest_added_up_json_keeps_all() -> None:
    names = [f"t{i:02d}" for i in range(25)]
    doc = _document({(i, 0, 1): [100 - i, i % 2] for i in range(25)}, names)
    assert len(doc["steps"][0]["per_tenant"]) == 25
    lines = report_text.served_tenants(doc)
    assert len(lines) == 21
    assert lines[0] == "concurrency=4: tenant t00 100 requests, 0 failed, served by answer@1 100"
    assert lines[19].startswith("concurrency=4: tenant t19 ")
    rest = range(20, 25)
    requests, failed = sum(100 - i + i % 2 for i in rest), sum(i % 2 for i in rest)
    assert lines[20] == (
        f"concurrency=4: others (5 tenants) {requests} requests, {failed} failed, "
        f"served by answer@1 {requests}"
    )
    from mlops_cli.perf.html_report import to_html

    page = to_html(doc)
    assert page.count("<td>concurrency=4</td><td>t") == 20 and "others (5 tenants)" in page
    assert report.to_markdown(doc).count("| concurrency=4 | t") == 20


# -- the command line refuses before sending anything --------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["http://127.0.0.1:1", "-m", "m", "--tenants", "a,b"],
            "--tenants, --tenant-distribution and --api-keys apply to router:// targets, "
            "not to http",
        ),
        (
            ["grpc://127.0.0.1:1", "-m", "m", "--tenants", "a", "--tenant-distribution", "zipf:1"],
            "apply to router:// targets, not to grpc",
        ),
        (["router://127.0.0.1:1", "-m", "m"], "sends every request as a tenant: none was given"),
        (["router://127.0.0.1:1", "--tenants", "a"], "the router target needs a model"),
        (["router://127.0.0.1:1/v2", "-m", "m", "--tenants", "a"], "is not a router URL"),
        (["router://127.0.0.1:1", "-m", "m", "--tenants", "a,b,a"], "listed twice"),
        (["router://127.0.0.1:1", "-m", "m", "--tenants", ","], "--tenants: no tenant given"),
        (
            [
                "router://127.0.0.1:1",
                "-m",
                "m",
                "--tenants",
                "a",
                "--tenant-distribution",
                "zipf:0",
            ],
            "--tenant-distribution: unknown distribution 'zipf:0'",
        ),
        (
            [
                "router://127.0.0.1:1",
                "-m",
                "m",
                "--tenants",
                "a",
                "--tenant-distribution",
                "zipf:abc",
            ],
            "--tenant-distribution: unknown distribution 'zipf:abc'",
        ),
        (
            ["router://127.0.0.1:1", "-m", "m", "--tenant-distribution", "uniform"],
            "--tenant-distribution needs tenants",
        ),
    ],
)
def test_perftest_refuses_bad_tenant_options_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    line = error_line(capsys, "perftest", *args, "--requests", "1", code=2)
    assert message in line, line


def test_perftest_refuses_a_tenants_file_over_its_bound_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    big = tmp_path / "tenants.txt"
    big.write_bytes(b"a\n" * (MAX_TENANTS_FILE_BYTES // 2 + 1))
    args = ["router://127.0.0.1:1", "-m", "m", "--tenants", f"@{big}", "--requests", "1"]
    assert "is over 8 MiB" in error_line(capsys, "perftest", *args, code=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["answer@2", "--via-router", "http://127.0.0.1:1"], "the router picks the version"),
        (["answer", "--via-router", "ftp://127.0.0.1:1"], "is not a router URL"),
        (["answer", "--via-router", "http://127.0.0.1:1/v2/models"], "is not a router URL"),
        (["answer", "--via-router", "http://127.0.0.1:1", "--target", "local"], "--target"),
        (["answer", "--api-key", "mlk_x"], "--api-key is for the router"),
        (
            ["answer", "--via-router", "http://127.0.0.1:1", "--tenant", "acme\r\nX-Tenant-Id: b"],
            "is not a tenant name",
        ),
        (
            ["answer", "--via-router", "http://127.0.0.1:1", "--api-key", "k\r\nX-Tenant-Id: b"],
            "--api-key must be one word of printable ASCII",
        ),
        (
            ["answer", "--via-router", "http://127.0.0.1:1", "--request-key", "two words"],
            "--request-key must be one word of printable ASCII",
        ),
    ],
)
def test_invoke_refuses_what_does_not_apply_through_the_router_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    line = error_line(capsys, "invoke", *args, "--input", '{"x": [0]}', code=2)
    assert message in line, line


def test_the_router_setting_is_used_when_no_flag_names_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_ROUTER", "ftp://from-the-environment:1")
    line = error_line(capsys, "invoke", "answer", "--input", '{"x": [0]}', code=2)
    assert "'ftp://from-the-environment:1' is not a router URL" in line
