"""The router's clients against a REAL `mlops router serve` in front of a real tritonserver:
`mlops perftest router://` sends as tenants routed to different versions and its report counts each
tenant's requests on exactly the version its route names; `mlops invoke --via-router` prints the
version the router chose, and the router's refusals become one error line and an exit code.

The fixtures are the router suite's: answer v1 (answers 1.0, the production alias) and v2 (2.0)
on the local Triton, acme routed to v2, globex on the alias; API keys of both; a router that takes
keys and trusts the tenant header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.cli.main import main
from tests.cli import error_line, run
from tests.integration.test_deploy import env  # noqa: F401 (fixture)
from tests.integration.test_router import keys, router, served  # noqa: F401 (fixtures)
from tests.servers.router import RouterProcess

pytestmark = [pytest.mark.integration]

ROUTED = {"acme": "answer@2", "globex": "answer@1"}  # what the fixtures route each tenant to


def _target(process: RouterProcess) -> str:
    return process.url.replace("http://", "router://")


def _check_counts_match_the_routes(document: dict[str, Any]) -> None:
    [step] = document["steps"]
    assert step["errors"] == 0 and step["requests"] >= 300, step["errors_by_kind"]
    per_tenant = step["per_tenant"]
    assert set(per_tenant) == set(ROUTED)
    for tenant, served_by in ROUTED.items():
        entry = per_tenant[tenant]
        assert entry["errors"] == 0
        assert entry["versions"] == {served_by: entry["requests"]}, (tenant, entry)
    assert step["per_model"]["answer"]["versions"] == {
        "1": per_tenant["globex"]["requests"],
        "2": per_tenant["acme"]["requests"],
    }
    assert sum(entry["requests"] for entry in per_tenant.values()) == step["requests"]


def test_perftest_counts_each_tenant_on_the_version_its_route_names(
    keys: dict[str, str],  # noqa: F811 (fixture)
    router: RouterProcess,  # noqa: F811 (fixture)
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    load = ["--concurrency", "4", "--requests", "400", "--warmup", "0s", "--report"]
    document = run(
        capsys, "perftest", _target(router), "-m", "answer", "--tenants", "acme,globex",
        "--tenant-distribution", "zipf:1", *load, str(tmp_path / "report"),
    )  # fmt: skip
    _check_counts_match_the_routes(document)
    per_tenant = document["steps"][0]["per_tenant"]
    # zipf:1 over two tenants: acme weighs 1, globex 1/2
    assert per_tenant["acme"]["requests"] / document["steps"][0]["requests"] == pytest.approx(
        2 / 3, abs=0.08
    )
    assert document["target"]["tenants"] == {
        "count": 2,
        "distribution": "zipf:1",
        "auth": "tenant-header",
    }
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["steps"][0]["per_tenant"] == per_tenant
    assert "| concurrency=4 | acme |" in (tmp_path / "report" / "summary.md").read_text()
    assert "<td>globex</td>" in (tmp_path / "report" / "report.html").read_text()

    # The same through API keys (Authorization: Bearer), the tenants taken from the keys file,
    # and an open loop with two worker processes whose windows are merged.
    keys_file = tmp_path / "client-keys.json"
    keys_file.write_text(json.dumps(keys))
    document = run(
        capsys, "perftest", _target(router), "-m", "answer", "--api-keys", f"@{keys_file}",
        "--rate", "200", "--duration", "2s", "--warmup", "0s", "--workers", "2",
    )  # fmt: skip
    _check_counts_match_the_routes(document)
    assert document["target"]["tenants"]["auth"] == "api-key"


def test_perftest_streams_through_the_router_per_tenant(
    keys: dict[str, str],  # noqa: F811 (fixture)
    router: RouterProcess,  # noqa: F811 (fixture)
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = run(
        capsys, "perftest", _target(router), "-m", "answer", "--tenants", "acme,globex",
        "--stream", "--concurrency", "2", "--requests", "300", "--warmup", "0s",
    )  # fmt: skip
    _check_counts_match_the_routes(document)
    assert document["steps"][0]["stream"]["tokens"] >= 300


def test_invoke_via_router_prints_the_version_the_router_chose(
    keys: dict[str, str],  # noqa: F811 (fixture)
    router: RouterProcess,  # noqa: F811 (fixture)
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = ("--input", '{"x": [0, 0]}')
    acme = run(capsys, "invoke", "answer", "--via-router", router.url, "--tenant", "acme", *request)
    assert (acme["version"], acme["source"], acme["outputs"]) == (2, "route", {"y": [2.0, 2.0]})
    assert acme["target"] == f"router:{router.url}"

    monkeypatch.setenv("MLOPS_API_KEY", keys["globex"])
    globex = run(capsys, "invoke", "answer", "--via-router", router.url, *request)
    assert (globex["version"], globex["source"], globex["outputs"]) == (
        1,
        "alias",
        {"y": [1.0, 1.0]},
    )

    # The router setting, without the flag; human output names the version on stderr.
    monkeypatch.setenv("MLOPS_ROUTER", router.url)
    monkeypatch.delenv("MLOPS_API_KEY")
    assert main(["invoke", "answer", "--tenant", "acme", *request]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"y": [2.0, 2.0]}
    assert f"answer v2 (route) via router:{router.url}" in captured.err

    streamed = run(capsys, "invoke", "answer", "--tenant", "globex", "--stream", *request)
    assert streamed["version"] == 1 and streamed["chunks"][0]["outputs"] == {"y": [1.0, 1.0]}


def test_invoke_via_router_turns_each_refusal_into_one_error_line(
    keys: dict[str, str],  # noqa: F811 (fixture)
    router: RouterProcess,  # noqa: F811 (fixture)
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = ("--input", '{"x": [0]}', "--via-router", router.url)
    unknown = error_line(capsys, "invoke", "ghost", "--tenant", "acme", *request, code=1)
    assert "ghost" in unknown and "HTTP 404" in unknown
    failure = run(capsys, "invoke", "ghost", "--tenant", "acme", *request, code=1)
    assert failure["error"]["type"] == "NotFoundError"

    bad_key = error_line(capsys, "invoke", "answer", "--api-key", "mlk_nope", *request, code=1)
    assert "unknown API key" in bad_key and "HTTP 401" in bad_key
    assert run(capsys, "invoke", "answer", "--api-key", "mlk_nope", *request, code=1)["error"][
        "type"
    ] == ("RouterAuthError")

    wrong_input = error_line(capsys, "invoke", "answer", "--tenant", "acme", "--input",
                             '{"z": [0]}', "--via-router", router.url, code=2)  # fmt: skip
    assert "'z' is not an input of answer" in wrong_input

    gone = error_line(
        capsys, "invoke", "answer", "--tenant", "acme", "--input", '{"x": [0]}',
        "--via-router", "http://127.0.0.1:1", code=1,
    )  # fmt: skip
    assert "the router at http://127.0.0.1:1 is unreachable" in gone
