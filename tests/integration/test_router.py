"""`mlops router serve` against a real tritonserver (the local one, through deploy): tenants routed
to their versions under one stable name, canaries, privacy against header games, bad input, metrics
and how soon a route change is seen."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run
from tests.integration.test_deploy import env, register_answer  # noqa: F401 (fixture)
from tests.servers.delay_http import DelayServer
from tests.servers.router import RouterClient, RouterProcess, answer_body, answer_of

pytestmark = [pytest.mark.integration]

REFRESH_S = 0.1


@pytest.fixture
def served(
    env: Any,  # noqa: F811 (fixture)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, Any]:
    """answer v1 (answers 1.0) and v2 (answers 2.0) both on the local Triton; @production -> 1,
    acme routed to 2, initech on v1 with a 10% canary to v2, secret private to acme."""
    for answer in (1, 2):
        register_answer(capsys, tmp_path, answer)
    run(capsys, "deploy", "answer@1", "--drain", "0")
    run(capsys, "deploy", "answer@2", "--no-switch")
    run(capsys, "route", "set", "acme", "answer", "2")
    run(capsys, "route", "set", "initech", "answer", "1", "--canary", "2:10")
    return {"registry": f"sqlite:///{tmp_path / 'registry.db'}"}


@pytest.fixture
def router(served: dict[str, Any], tmp_path: Path) -> Iterator[RouterProcess]:
    keys = tmp_path / "keys.yaml"
    with RouterProcess(
        served["registry"],
        "--trust-tenant-header",
        "--keys",
        str(keys),
        "--refresh",
        str(REFRESH_S),
        "--tenant-label",
        "all",
        "--max-body",
        "64KiB",
    ) as process:
        yield process


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """API keys of acme and globex in tmp_path/keys.yaml (made before the router starts)."""
    made = {}
    for tenant in ("acme", "globex"):
        made[tenant] = run(
            capsys, "router", "key", "create", tenant, "--keys", str(tmp_path / "keys.yaml")
        )["key"]
    return made


def tenant(name: str) -> dict[str, str]:
    return {"X-Tenant-Id": name}


def test_each_tenant_gets_its_version_under_one_stable_name(
    keys: dict[str, str], router: RouterProcess
) -> None:
    client = RouterClient(router.url)
    status, headers, data = client.infer("answer", answer_body(), tenant("acme"))
    assert (status, answer_of(data), headers["x-model-version"], headers["x-model-source"]) == (
        200,
        2.0,
        "2",
        "route",
    )
    status, headers, data = client.infer("answer", answer_body(), tenant("globex"))
    assert (status, answer_of(data), headers["x-model-version"], headers["x-model-source"]) == (
        200,
        1.0,
        "1",
        "alias",
    )
    status, headers, data = client.get("/v2/models/answer", tenant("acme"))
    metadata = json.loads(data)
    assert status == 200 and metadata["name"] == "answer" and metadata["versions"] == ["2"]
    assert [tensor["name"] for tensor in metadata["inputs"]] == ["x"]


def test_a_canary_takes_its_share_of_keys_and_each_key_stays_on_its_side(
    keys: dict[str, str], router: RouterProcess
) -> None:
    client = RouterClient(router.url)
    sides = {}
    for number in range(10_000):
        headers = {"X-Tenant-Id": "initech", "X-Request-Key": f"key-{number}"}
        status, answer, _ = client.infer("answer", answer_body(), headers)
        assert status == 200
        sides[number] = answer["x-model-version"]
    canary = sum(1 for side in sides.values() if side == "2")
    assert 800 <= canary <= 1200
    for number in range(0, 10_000, 97):  # the same key, the same side
        headers = {"X-Tenant-Id": "initech", "X-Request-Key": f"key-{number}"}
        assert client.infer("answer", answer_body(), headers)[1]["x-model-version"] == sides[number]


def test_a_private_model_is_a_404_for_every_other_tenant_whatever_the_headers(
    keys: dict[str, str], router: RouterProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "models", "update", "answer", "--private-to", "acme")
    time.sleep(REFRESH_S * 5)
    client = RouterClient(router.url)
    unknown = client.infer("ghost", answer_body(), tenant("globex"))
    assert unknown[0] == 404
    games: list[list[tuple[str, str]]] = [
        [("X-Tenant-Id", "globex")],
        [("X-Tenant-Id", "GLOBEX")],
        [("X-Tenant-Id", "globex"), ("X-Tenant-Id", "acme")],  # two tenant headers: refused
        [("Authorization", f"Bearer {keys['globex']}"), ("X-Tenant-Id", "acme")],
        [("Authorization", f"Bearer {keys['globex']}"), ("x-tenant-id", "acme")],
        [("Authorization", f"bearer {keys['globex']}")],
    ]
    for headers in games:
        status, _, data = client.infer("answer", answer_body(), headers)
        assert status in (400, 404), (headers, status, data)
        if status == 404:
            assert json.loads(data)["error"] == json.loads(unknown[2])["error"].replace(
                "ghost", "answer"
            )
        for path in ("/v2/models/answer", "/v2/models/answer/ready"):
            assert client.get(path, dict(headers[:1]))[0] in (400, 404)
    mine = client.infer("answer", answer_body(), [("Authorization", f"Bearer {keys['acme']}")])
    assert mine[0] == 200 and mine[1]["x-model-version"] == "2"


def test_bad_requests_get_their_status_and_one_line(
    keys: dict[str, str], router: RouterProcess, tmp_path: Path
) -> None:
    client = RouterClient(router.url)
    cases = {
        "unknown model": (client.infer("ghost", answer_body(), tenant("acme")), 404),
        "bad key": (client.infer("answer", answer_body(), {"Authorization": "Bearer nope"}), 401),
        "no tenant": (client.infer("answer", answer_body(), {}), 400),
        "bad tenant name": (client.infer("answer", answer_body(), tenant("a/b")), 400),
        "not JSON": (client.infer("answer", b"{not json", tenant("acme")), 400),
        "too large": (client.infer("answer", b"[" + b"0," * 40_000 + b"0]", tenant("acme")), 413),
        "wrong method": (client.get("/v2/models/answer/infer", tenant("acme")), 405),
        "no such route": (client.get("/v3/whatever", tenant("acme")), 404),
    }
    for name, ((status, _, data), expected) in cases.items():
        assert status == expected, name
        reason = json.loads(data)["error"]
        assert reason and "\n" not in reason, name


def test_an_unknown_tenant_follows_the_default_alias_or_gets_a_404(
    keys: dict[str, str], router: RouterProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    client = RouterClient(router.url)
    assert client.infer("answer", answer_body(), tenant("newcomer"))[1]["x-model-version"] == "1"
    run(capsys, "alias", "delete", "answer", "production")
    time.sleep(REFRESH_S * 5)
    status, _, data = client.infer("answer", answer_body(), tenant("newcomer"))
    assert status == 404 and "no route" in json.loads(data)["error"]


def test_a_route_change_is_seen_within_one_refresh(
    keys: dict[str, str], router: RouterProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    client = RouterClient(router.url)
    assert client.infer("answer", answer_body(), tenant("acme"))[1]["x-model-version"] == "2"
    run(capsys, "route", "set", "acme", "answer", "1")
    changed = time.monotonic()
    while client.infer("answer", answer_body(), tenant("acme"))[1]["x-model-version"] != "1":
        assert time.monotonic() - changed < 5.0
    # one interval, plus the time the refresh itself takes on a loaded machine
    assert time.monotonic() - changed < REFRESH_S + 1.0


def test_metrics_count_each_tenants_requests_exactly(
    keys: dict[str, str], router: RouterProcess
) -> None:
    client = RouterClient(router.url)
    sent = {"acme": 7, "globex": 5}
    for name, count in sent.items():
        for _ in range(count):
            assert client.infer("answer", answer_body(), tenant(name))[0] == 200
    client.infer("ghost", answer_body(), tenant("acme"))
    text = client.get("/metrics")[2].decode()
    counted = {
        (m["tenant"], m["version"], m["status"]): float(m["value"])
        for m in _samples(text, "mlops_router_requests_total")
        if m["model"] in ("answer", "ghost")
    }
    assert counted[("acme", "2", "200")] == 7
    assert counted[("globex", "1", "200")] == 5
    assert counted[("acme", "", "404")] == 1
    assert "mlops_router_request_seconds_bucket" in text
    assert "mlops_router_table_age_seconds" in text


def test_an_upstream_that_does_not_answer_in_time_is_a_504(
    served: dict[str, Any], tmp_path: Path
) -> None:
    from mlops_cli.registry import open_registry

    registry = open_registry(served["registry"])
    slow = DelayServer(delay_ms=3000).start()
    try:
        detail = {
            "where": "slow",
            "triton_name": "answer-v2",
            "servers": [{"name": "s", "url": slow.url}],
        }
        registry.record_deployment("answer", 2, "triton:slow", detail=detail)
        registry.remove_deployment("answer", 2, "local")
        with RouterProcess(
            served["registry"], "--trust-tenant-header", "--upstream-timeout", "0.5"
        ) as process:
            status, headers, data = RouterClient(process.url).infer(
                "answer", answer_body(), tenant("acme")
            )
    finally:
        slow.stop()
    assert status == 504 and headers["x-model-version"] == "2"
    assert "sent nothing" in json.loads(data)["error"]


def _samples(text: str, name: str) -> Iterator[dict[str, str]]:
    pattern = re.compile(rf"^{name}\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        found = pattern.match(line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
            yield {**labels, "value": found.group(2)}
