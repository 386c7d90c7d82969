"""`mlops router serve` against a real tritonserver (the local one, through deploy): tenants routed
to their versions under one stable name, canaries, privacy against header games, bad input, metrics
and how soon a route change is seen."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import error_line, run
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


def test_status_lists_the_live_routers_and_their_revision(
    keys: dict[str, str], router: RouterProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run(capsys, "status")
    [live] = report["routers"]
    assert live["address"] == f"127.0.0.1:{router.port}"
    assert live["applied_revision"] == report["registry_revision"]
    assert run(capsys, "router", "list")["routers"] == report["routers"]
    router.stop()  # a router that stops removes its heartbeat
    assert run(capsys, "status")["routers"] == []


def test_workers_share_one_port_and_add_up_their_metrics(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with RouterProcess(served["registry"], "--trust-tenant-header", "--workers", "2") as router:
        deadline = time.monotonic() + 10
        while len(run(capsys, "router", "list")["routers"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for _ in range(40):  # a new connection each time: the kernel spreads them
            client = RouterClient(router.url)
            assert client.infer("answer", answer_body(), tenant("acme"))[0] == 200
            client.close()
        addresses = {r["address"] for r in run(capsys, "router", "list")["routers"]}
        # each worker shares its figures at every refresh step (250 ms): any worker's /metrics
        # adds them up once they are shared
        deadline = time.monotonic() + 5
        while True:
            text = RouterClient(router.url).get("/metrics")[2].decode()
            counted = sum(
                float(m["value"])
                for m in _samples(text, "mlops_router_requests_total")
                if m["tenant"] == "acme" and m["status"] == "200"
            )
            if counted >= 40 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert counted == 40 and addresses == {f"127.0.0.1:{router.port}"}


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


def _ready_answers(url: str) -> list[str]:
    from tests.conftest import triton_request

    index = triton_request(url, "/v2/repository/index", {}) or []
    return [
        entry["name"]
        for entry in index  # type: ignore[union-attr]
        if entry.get("state") == "READY" and entry["name"].startswith("answer-v")
    ]


def _samples(text: str, name: str) -> Iterator[dict[str, str]]:
    pattern = re.compile(rf"^{name}\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        found = pattern.match(line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
            yield {**labels, "value": found.group(2)}


# -- streams, cut-overs and failures ----------------------------------------------------------


def _ticker_versions(capsys: pytest.CaptureFixture[str], tmp_path: Path, count: int) -> None:
    """ticker v1..v<count>, each a distinct package of the streaming fixture model."""
    from tests.conftest import FIXTURES

    for number in range(1, count + 1):
        folder = tmp_path / f"ticker-{number}"
        shutil.copytree(FIXTURES / "models" / "ticker", folder)
        with (folder / "model.py").open("a") as handle:
            handle.write(f"\n# package {number}\n")
        assert run(capsys, "register", str(folder))["version"] == number


def _stream(
    url: str, model: str, count: int, headers: dict[str, str]
) -> tuple[float, list[tuple[float, float, str]]]:
    """POST generate_stream; (start, [(arrived, produced, version header)]) per event."""
    import http.client

    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"count": count}).encode()
    started = time.time()
    conn.request(
        "POST",
        f"/v2/models/{model}/generate_stream",
        body,
        {**headers, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200, response.read()
    version = response.getheader("X-Model-Version") or ""
    events = []
    while True:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            event = json.loads(line[5:])
            token = event["token"] if isinstance(event["token"], str) else event["token"][0]
            produced = float(token.split("@")[1])
            events.append((time.time(), produced, version))
    conn.close()
    return started, events


def test_a_stream_passes_through_chunk_by_chunk(
    env: Any,  # noqa: F811 (fixture)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ticker_versions(capsys, tmp_path, 1)
    run(capsys, "deploy", "ticker@1", "--drain", "0")
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    with RouterProcess(registry, "--trust-tenant-header") as router:
        _, events = _stream(router.url, "ticker", 10, tenant("acme"))
    assert len(events) == 10 and {version for *_, version in events} == {"1"}
    first, last = events[0][0], events[-1][0]
    assert last - first >= 0.3  # 9 gaps of 50 ms: the events were not sent together
    assert events[0][0] < events[-1][1]  # the first arrived before the last was produced


def test_deploy_waits_for_a_stream_in_flight_on_the_old_version(
    env: Any,  # noqa: F811 (fixture)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import threading

    _ticker_versions(capsys, tmp_path, 2)
    run(capsys, "deploy", "ticker@1", "--drain", "0")
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    with RouterProcess(registry, "--trust-tenant-header", "--refresh", str(REFRESH_S)) as router:
        streamed: list[Any] = []
        reader = threading.Thread(
            target=lambda: streamed.append(_stream(router.url, "ticker", 160, tenant("acme")))
        )
        reader.start()  # 160 tokens, 50 ms apart: about 8 s on v1
        time.sleep(0.5)
        deployed = run(capsys, "deploy", "ticker@2")
        reader.join(timeout=60)
    started, events = streamed[0]
    assert len(events) == 160 and {version for *_, version in events} == {"1"}
    assert deployed["retired"] == [1]
    drain = deployed["drain"]
    assert len(drain["routers"]) == 1 and drain["unconfirmed"] == []
    # the deploy waited for the stream's end (seconds after the switch), not a fixed 2 s
    assert drain["seconds"] >= 4.0
    assert events[-1][0] - started >= 7.5


def test_a_cut_over_under_load_through_two_routers_loses_no_request(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    run(capsys, "route", "delete", "initech", "answer")  # nothing but @production keeps v1
    routers = [
        RouterProcess(served["registry"], "--trust-tenant-header", "--refresh", str(REFRESH_S))
        for _ in range(2)
    ]
    for router in routers:
        router.start()
    answers: list[tuple[int, str, float, float]] = []  # status, version, answer, received
    stop = threading.Event()
    lock = threading.Lock()

    def load(index: int) -> None:
        clients = [RouterClient(router.url) for router in routers]
        sent = 0
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            client = clients[(index + sent) % 2]
            sent += 1
            try:
                status, headers, data = client.infer("answer", answer_body(), tenant("globex"))
                value = answer_of(data) if status == 200 else -1.0
                version = headers.get("x-model-version", "")
            except OSError:
                status, version, value = 0, "", -1.0
            with lock:
                answers.append((status, version, value, time.monotonic()))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        while len(answers) < 2_000:
            time.sleep(0.05)
        deployed = run(capsys, "deploy", "answer@2")
        unloaded = time.monotonic()  # v1 was unloaded before deploy returned
        while len(answers) < 5_000:
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        stop.set()
        for router in routers:
            router.stop()
    failed = [answer for answer in answers if answer[0] != 200]
    assert len(answers) >= 5_000 and failed == []
    assert all(str(int(value)) == version for _, version, value, _ in answers)
    assert not [a for a in answers if a[1] == "1" and a[3] > unloaded]
    assert {a[1] for a in answers} == {"1", "2"}
    assert deployed["retired"] == [1]
    assert len(deployed["drain"]["routers"]) == 2 and deployed["drain"]["unconfirmed"] == []


def test_a_replica_killed_mid_run_leaves_its_requests_to_the_other(
    served: dict[str, Any],
    local_triton: Any,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """answer v1 on two Triton servers (the session's, and a second one started here); the
    second is killed with SIGKILL while requests flow: none fails."""
    import os
    import signal
    import threading

    from mlops_cli.config import resolve_settings
    from mlops_cli.local import LocalTriton
    from mlops_cli.registry import open_registry
    from mlops_cli.workspace import Workspace
    from tests.conftest import triton_request

    first = local_triton.read_state()
    assert first is not None
    root = tmp_path_factory.mktemp("second-triton")
    settings = resolve_settings(cwd=root, environ={}, set_pairs=[f"workspace={root / '.mlops'}"])
    second_manager = LocalTriton(Workspace(settings.workspace), settings.local)
    second_manager.up()
    try:
        second = second_manager.read_state()
        assert second is not None
        shutil.copytree(
            Path(first.model_repository) / "answer-v1", Path(second.model_repository) / "answer-v1"
        )
        triton_request(second.http_url, "/v2/repository/models/answer-v1/load", {})
        servers = [{"name": "a", "url": first.http_url}, {"name": "b", "url": second.http_url}]
        detail = {"where": "pair", "triton_name": "answer-v1", "servers": servers}
        open_registry(served["registry"]).record_deployment(
            "answer", 1, "triton:pair", detail=detail
        )
        statuses: list[int] = []
        with RouterProcess(
            served["registry"], "--trust-tenant-header", "--refresh", str(REFRESH_S)
        ) as router:

            def load() -> None:
                client = RouterClient(router.url)
                for _ in range(600):
                    try:
                        statuses.append(client.infer("answer", answer_body(), tenant("globex"))[0])
                    except OSError:
                        statuses.append(0)

            threads = [threading.Thread(target=load) for _ in range(4)]
            for thread in threads:
                thread.start()
            while len(statuses) < 600:
                time.sleep(0.01)
            os.kill(second.pid, signal.SIGKILL)
            for thread in threads:
                thread.join(timeout=120)
            text = RouterClient(router.url).get("/metrics")[2].decode()
    finally:
        second_manager.down()
    assert len(statuses) == 2_400 and set(statuses) == {200}
    retries = {m["model"]: float(m["value"]) for m in _samples(text, "mlops_router_retries_total")}
    errors = sum(float(m["value"]) for m in _samples(text, "mlops_router_upstream_errors_total"))
    assert errors >= 1  # the killed server was called, failed, and its requests went elsewhere
    assert retries.get("answer", 0) >= 1


# -- on-demand loading on a dynamic server ----------------------------------------------------


@pytest.mark.slow
def test_a_dynamic_server_with_room_for_3_of_10_models_answers_for_all_10(
    env: Any,  # noqa: F811 (fixture)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """answer v1..v10 deployed to a dynamic server (the local Triton, declared with memory for
    three of them, 64 MB each); tenant tN routed to vN; requests over all ten through the router:
    none fails, each answered by its version, never more than three loaded at once."""
    import random
    import threading

    from mlops_cli.registry import open_registry

    state = env.read_state()
    url = state.http_url
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        json.dumps(
            {
                "name": "dyn",
                "repository": state.model_repository,
                "servers": [{"name": "dyn", "url": url, "memory_mb": 192, "dynamic": True}],
            }
        )
    )
    deploy = ("--target", "triton", "--fleet", str(fleet), "--no-switch")
    for answer in range(1, 11):
        register_answer(capsys, tmp_path, answer)
        run(capsys, "deploy", f"answer@{answer}", *deploy)
        run(capsys, "route", "set", f"t{answer}", "answer", str(answer))
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    assert not _ready_answers(url)  # each answered its warmup, then was unloaded
    rows = run(capsys, "status", "--fleet", str(fleet))["deployments"]
    assert {row["state"] for row in rows} == {"READY"} and len(rows) == 10
    assert "loads on its first request" in rows[0]["note"]
    too_big = tmp_path / "big.yaml"
    too_big.write_text(fleet.read_text().replace('"memory_mb": 192', '"memory_mb": 32'))
    line = error_line(
        capsys,
        "deploy",
        "answer@1",
        "--target",
        "triton",
        "--fleet",
        str(too_big),
        "--no-switch",
        code=1,
    )
    assert "no server can take answer v1 (64 MB)" in line
    loaded_counts: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            loaded_counts.append(len(_ready_answers(url)))
            time.sleep(0.02)

    results: list[tuple[int, int, float, str]] = []
    with RouterProcess(registry.uri, "--trust-tenant-header") as router:

        def load(seed: int) -> None:
            rng = random.Random(seed)
            client = RouterClient(router.url)
            for number in range(40):
                # thread 0 starts with each of the ten once; then Zipf-like over 1..10
                sweep = seed == 0 and number < 10
                version = number + 1 if sweep else min(10, int(rng.paretovariate(1.1)))
                status, headers, data = client.infer("answer", answer_body(), tenant(f"t{version}"))
                value = answer_of(data) if status == 200 else -1.0
                results.append((version, status, value, headers.get("x-model-load", "")))

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=load, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        stop.set()
        watcher.join(timeout=10)
        text = RouterClient(router.url).get("/metrics")[2].decode()
    assert len(results) == 160
    assert [r for r in results if r[1] != 200 or r[2] != r[0]] == []
    assert max(loaded_counts) <= 3
    loads = sum(float(m["value"]) for m in _samples(text, "mlops_router_model_loads_total"))
    evictions = sum(float(m["value"]) for m in _samples(text, "mlops_router_model_evictions_total"))
    cold = sum(float(m["value"]) for m in _samples(text, "mlops_router_cold_requests_total"))
    assert {r[0] for r in results} == set(range(1, 11))
    assert loads >= 10 and evictions >= loads - 3
    assert cold == sum(1 for r in results if r[3] == "cold") and 0 < cold < len(results)
