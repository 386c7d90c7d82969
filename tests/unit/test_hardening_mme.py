"""mme-local hardening (issue 12, items 4, 20, 21) without servers: container names that never
collide, a taken name never read as "already loaded", loads that wait for busy models instead of
refusing at once, and request bodies bounded before they are read."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.mme import http_front
from mlops_cli.mme.agent import Agent, AgentError, EndpointState, container_name
from mlops_cli.mme.containers import ContainerError, ContainerReply
from mlops_cli.mme.http_front import MAX_BODY_BYTES, ClientConnection, Request
from tests.servers.mme_models import make_model, tarball_bytes

pytestmark = pytest.mark.unit


# -- item 4: one container name per TargetModel ---------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("ep", "col.x.tar.gz"), ("ep", "col_x.tar.gz")),
        (("ep", "m.tar.gz"), ("ep", "m.tgz")),
        (("ep", "m.tar.gz"), ("ep", "m")),
        (("a__b", "c.tar.gz"), ("a", "b__c.tar.gz")),
        (("ep", "x" * 100 + "1.tar.gz"), ("ep", "x" * 100 + "2.tar.gz")),
    ],
)
def test_container_names_differ_for_different_target_models(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    one, two = container_name(*first), container_name(*second)
    assert one != two
    for name in (one, two):
        assert name.replace("_", "").replace("-", "").isalnum() and len(name) <= 96
    assert container_name(*first) == one  # stable: the same pair, the same name


class NamedContainer:
    """Like multi-model-server: one model folder per name, 409 for a name already taken; an
    invocation answers with the ``name`` of the folder's ``model.json``."""

    kind = "mms"
    url = "fake://"
    reply_type = "application/json"

    def __init__(self) -> None:
        self.models: dict[str, Path] = {}
        self.refuse_always = False

    def load(self, name: str, model_dir: Path) -> None:
        if name in self.models or self.refuse_always:
            raise ContainerError(f"Model {name} is already registered.", status=409)
        self.models[name] = model_dir

    def unload(self, name: str) -> None:
        self.models.pop(name, None)

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        if name not in self.models:
            return ContainerReply(404, b"Model not found", "text/plain")
        spec = json.loads((self.models[name] / "model.json").read_text())
        return ContainerReply(200, json.dumps({"model": spec["name"]}).encode(), "")

    def stop(self) -> None:
        pass


def s3_folder_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: Any, names: list[str], **kw: Any
) -> Agent:
    """An agent whose S3 is a folder of ``<name>.tar.gz`` (64 MB declared each)."""
    tarballs = tmp_path / "s3"
    tarballs.mkdir()
    for name in names:
        folder = make_model(tmp_path / "src", name, memory_mb=64)
        (tarballs / f"{name}.tar.gz").write_bytes(tarball_bytes(folder))
    agent = Agent(tmp_path / "work", lambda backend: container, **kw)

    def download(ep: EndpointState, target: str, into: Path) -> None:
        shutil.copyfile(tarballs / target, into)

    monkeypatch.setattr(agent, "_download", download)
    return agent


def answered_by(agent: Agent, target: str) -> str:
    reply = agent.invoke("ep", target, b"{}", "application/json", "")
    assert reply.status == 200
    return str(json.loads(reply.body)["model"])


def test_targets_whose_names_differ_only_in_punctuation_answer_from_their_own_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = NamedContainer()
    agent = s3_folder_agent(tmp_path, monkeypatch, container, ["col.x", "col_x"])
    agent.register("ep", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=1024)
    assert answered_by(agent, "col.x.tar.gz") == "col.x"
    assert answered_by(agent, "col_x.tar.gz") == "col_x"
    assert answered_by(agent, "col.x.tar.gz") == "col.x"
    assert len(container.models) == 2


def test_a_taken_container_name_is_never_read_as_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = NamedContainer()
    agent = s3_folder_agent(tmp_path, monkeypatch, container, ["m", "other"])
    agent.register("ep", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=1024)
    # A leftover of an earlier, half-failed load of the same TargetModel, from another folder:
    stale = make_model(tmp_path / "stale", "other")
    container.models[container_name("ep", "m.tar.gz")] = stale
    assert answered_by(agent, "m.tar.gz") == "m"  # replaced, not served as it was

    container.refuse_always = True  # a container that keeps refusing: an error, not a success
    with pytest.raises(AgentError) as caught:
        agent.invoke("ep", "other.tar.gz", b"{}", "application/json", "")
    assert (caught.value.status, caught.value.code) == (424, "ModelError")
    assert "already registered" in caught.value.message
    assert [m["target"] for m in agent.endpoint("ep").describe()["loaded"]] == ["m.tar.gz"]


# -- item 20: a load waits for memory held by busy models ----------------------------------


class SlowContainer(NamedContainer):
    """Each invocation takes ``seconds``: models stay busy while requests run."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.most_loaded = 0

    def load(self, name: str, model_dir: Path) -> None:
        super().load(name, model_dir)
        self.most_loaded = max(self.most_loaded, len(self.models))

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        time.sleep(self.seconds)
        return super().invoke(name, body, content_type, accept)


def test_concurrent_calls_over_more_models_than_fit_wait_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"m{i}" for i in range(8)]
    container = SlowContainer(0.02)
    agent = s3_folder_agent(tmp_path, monkeypatch, container, names, memory_wait_s=30)
    agent.register("ep", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=130)  # two fit
    failures: list[str] = []
    answers: list[tuple[str, str]] = []

    def client(index: int) -> None:
        for call in range(4):
            name = names[(index + call * 3) % len(names)]
            try:
                answers.append((name, answered_by(agent, f"{name}.tar.gz")))
            except AgentError as exc:
                failures.append(f"{exc.status} {exc.code}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]  # 4x what fits
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(answers) == 32 and all(asked == got for asked, got in answers)
    assert container.most_loaded <= 2
    state = agent.endpoint("ep").describe()
    assert state["used_mb"] <= 130 and sum(m["evictions"] for m in state["models"].values()) > 0


def test_a_load_waits_for_a_busy_model_to_finish_and_refuses_only_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = NamedContainer()
    agent = s3_folder_agent(tmp_path, monkeypatch, container, ["a", "b"], memory_wait_s=30)
    agent.register("ep", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=100)  # one fits
    assert answered_by(agent, "a.tar.gz") == "a"
    ep = agent.endpoint("ep")
    busy = agent.acquire(ep, "a.tar.gz")  # a request for a is in flight
    result: list[str] = []
    waiting = threading.Thread(target=lambda: result.append(answered_by(agent, "b.tar.gz")))
    waiting.start()
    while not ep.waiting:  # the load of b waits for memory ...
        time.sleep(0.01)
    assert result == []
    agent.finish(ep, busy, 0.0, ContainerReply(200, b"{}", ""))  # ... until a is idle
    waiting.join(timeout=30)
    assert result == ["b"]
    assert [m["target"] for m in ep.describe()["loaded"]] == ["b.tar.gz"]

    agent.memory_wait_s = 0.2  # a model that never finishes: refused once the wait is over
    agent.acquire(ep, "b.tar.gz")
    with pytest.raises(AgentError) as caught:
        agent.invoke("ep", "a.tar.gz", b"{}", "application/json", "")
    assert (caught.value.status, caught.value.code) == (429, "ModelNotReadyException")
    assert [m["target"] for m in ep.describe()["loaded"]] == ["b.tar.gz"]


# -- item 21: request bodies are bounded before they are read -------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = self.eof = self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.eof, "written after write_eof"
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def get_extra_info(self, name: str) -> Any:
        return None


class Recorder:
    """Answers at once, or holds the answers until :meth:`release` when ``hold`` is set."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.seen: list[Request] = []
        self.held: list[tuple[ClientConnection, Request]] = []

    def handle(self, conn: ClientConnection, request: Request) -> None:
        self.seen.append(request)
        if self.hold:
            self.held.append((conn, request))
        else:
            conn.respond(request, 200, b"ok %d" % len(request.body), "text/plain")

    def release(self) -> None:
        while self.held:
            conn, request = self.held.pop(0)
            conn.respond(request, 200, b"ok %d" % len(request.body), "text/plain")


def head(extra: bytes) -> bytes:
    return b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def status_and_body(data: bytes) -> tuple[int, bytes]:
    top, _, body = data.partition(b"\r\n\r\n")
    return int(top.split(b" ", 2)[1]), body


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_front, "LINGER_S", 0.05)

    async def scenario() -> tuple[Recorder, FakeTransport]:
        handler, transport = Recorder(), FakeTransport()
        conn = ClientConnection(handler)
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(head(b"Content-Length: 1073741824\r\n") + b"abc")
        assert len(transport.written) == 1 and transport.eof and not transport.closed
        for _ in range(64):  # what the client still sends is dropped, not kept
            conn.data_received(b"x" * 65536)
        assert conn.body == [] and len(transport.written) == 1
        await asyncio.sleep(0.2)
        return handler, transport

    handler, transport = asyncio.run(scenario())
    assert handler.seen == []  # never handed on
    status, body = status_and_body(transport.written[0])
    assert status == 413
    assert json.loads(body) == {"message": f"HTTP content length exceeded {MAX_BODY_BYTES} bytes."}
    assert b"Connection: close" in transport.written[0]
    assert b"x-amzn-ErrorType" not in transport.written[0]  # boto3 reports "(413)", as SageMaker
    assert transport.closed  # after the linger


def test_a_chunked_body_is_refused_once_it_grows_past_the_limit() -> None:
    async def scenario() -> tuple[Recorder, FakeTransport]:
        handler, transport = Recorder(), FakeTransport()
        conn = ClientConnection(handler)
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(head(b"Transfer-Encoding: chunked\r\n"))
        chunk = b"100000\r\n" + b"y" * 0x100000 + b"\r\n"  # 1 MiB chunks
        for _ in range(6):
            conn.data_received(chunk)
        assert transport.written == []  # 6 MiB: still within the limit
        conn.data_received(chunk)
        assert conn.body == []  # what was buffered is released
        for _ in range(4):
            conn.data_received(chunk)
        conn.data_received(b"0\r\n\r\n")
        return handler, transport

    handler, transport = asyncio.run(scenario())
    assert handler.seen == [] and len(transport.written) == 1
    assert status_and_body(transport.written[0])[0] == 413


def test_bodies_up_to_the_limit_pass_whole() -> None:
    async def scenario() -> FakeTransport:
        handler, transport = Recorder(), FakeTransport()
        conn = ClientConnection(handler)
        conn.connection_made(transport)  # type: ignore[arg-type]
        body = b"z" * MAX_BODY_BYTES
        conn.data_received(head(b"Content-Length: %d\r\n" % len(body)) + body)
        conn.data_received(head(b"Transfer-Encoding: chunked\r\n") + b"3\r\nabc\r\n0\r\n\r\n")
        return transport

    transport = asyncio.run(scenario())
    assert [status_and_body(w) for w in transport.written] == [
        (200, b"ok %d" % MAX_BODY_BYTES),
        (200, b"ok 3"),
    ]


def test_the_refusal_of_a_pipelined_request_comes_after_the_answers_due_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_front, "LINGER_S", 0.05)

    async def scenario() -> tuple[Recorder, FakeTransport]:
        handler, transport = Recorder(hold=True), FakeTransport()
        conn = ClientConnection(handler)
        conn.connection_made(transport)  # type: ignore[arg-type]
        small = head(b"Content-Length: 2\r\n") + b"hi"
        conn.data_received(small + small + head(b"Content-Length: 99999999\r\n") + b"zz")
        assert transport.written == [] and transport.paused  # nothing more is read meanwhile
        handler.release()  # the first answer, which hands on the second request
        handler.release()
        await asyncio.sleep(0.2)
        return handler, transport

    handler, transport = asyncio.run(scenario())
    assert len(handler.seen) == 2
    assert [status_and_body(w)[0] for w in transport.written] == [200, 200, 413]
    assert transport.eof and transport.closed and not transport.paused


# -- follow-up: the TargetModel pattern covers the whole string ----------------------------


@pytest.mark.parametrize("target", ["m.tar.gz\n", "m.tar.gz\r\n", "\nm.tar.gz", "m.tar.gz\nx"])
def test_a_target_model_with_a_line_break_is_refused_as_sagemaker_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    container = NamedContainer()
    agent = s3_folder_agent(tmp_path, monkeypatch, container, ["m"])
    agent.register("ep", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=1024)
    with pytest.raises(AgentError) as caught:
        agent.invoke("ep", target, b"{}", "application/json", "")
    assert (caught.value.status, caught.value.code) == (400, "ValidationError")
    assert "Invalid TargetModel" in caught.value.message
    assert container.models == {} and agent.endpoint("ep").describe()["loaded"] == []
    assert answered_by(agent, "m.tar.gz") == "m"  # the same name without the break is served


# -- follow-up: request heads are bounded in size, count and time ---------------------------


def connected(handler: Any) -> tuple[ClientConnection, FakeTransport]:
    conn, transport = ClientConnection(handler), FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def send_in_reads(conn: ClientConnection, data: bytes, size: int) -> None:
    for offset in range(0, len(data), size):
        conn.data_received(data[offset : offset + size])


@pytest.mark.parametrize("read_size", [1 << 20, 65536, 1000], ids=["one-read", "64k", "1000"])
def test_a_1_mb_header_is_refused_431_without_being_buffered(
    monkeypatch: pytest.MonkeyPatch, read_size: int
) -> None:
    import tracemalloc

    monkeypatch.setattr(http_front, "LINGER_S", 0.05)
    huge = head(b"X-Big: ") + b"a" * (1 << 20)  # the header never ends

    async def scenario() -> tuple[Recorder, FakeTransport, int]:
        handler = Recorder()
        conn, transport = connected(handler)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            send_in_reads(conn, huge, read_size)
            kept = tracemalloc.get_traced_memory()[0] - base  # what the connection holds
        finally:
            tracemalloc.stop()
        assert len(transport.written) == 1 and transport.eof  # answered, lingering
        await asyncio.sleep(0.2)
        return handler, transport, kept

    handler, transport, kept = asyncio.run(scenario())
    assert handler.seen == []
    status, body = status_and_body(transport.written[0])
    assert status == 431
    assert json.loads(body)["message"].startswith("Request header fields exceed 16384 bytes")
    assert b"Connection: close" in transport.written[0] and transport.closed
    assert kept < 64 * 1024, f"{kept} bytes kept of a 1 MB header"


def test_a_url_over_8_kib_is_refused_414() -> None:
    async def scenario() -> tuple[Recorder, FakeTransport]:
        handler = Recorder()
        conn, transport = connected(handler)
        send_in_reads(conn, b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 1000)
        return handler, transport

    handler, transport = asyncio.run(scenario())
    assert handler.seen == [] and len(transport.written) == 1
    assert status_and_body(transport.written[0])[0] == 414


def test_more_than_100_header_fields_are_refused_431() -> None:
    async def scenario() -> tuple[Recorder, FakeTransport]:
        handler = Recorder()
        conn, transport = connected(handler)
        fields = b"".join(b"X-%d: 1\r\n" % index for index in range(101))  # 1 KiB in all
        conn.data_received(head(fields + b"Content-Length: 0\r\n"))
        return handler, transport

    handler, transport = asyncio.run(scenario())
    assert handler.seen == [] and len(transport.written) == 1
    assert status_and_body(transport.written[0])[0] == 431


def test_heads_within_the_limits_pass_however_they_are_read() -> None:
    """A 15 KiB head with its body in one read, 100 fields, an 8 KiB URL, and many pipelined
    requests in one read longer than the head limit: all answered, none refused."""
    big_head = head(b"X-Pad: " + b"p" * (15 * 1024) + b"\r\nContent-Length: 100000\r\n")
    fields = b"".join(b"X-%d: 1\r\n" % index for index in range(98))  # + Host, Length
    small = head(b"Content-Length: 2\r\n") + b"hi"
    stream = (
        big_head
        + b"b" * 100000
        + head(fields + b"Content-Length: 0\r\n")
        + b"POST /"
        + b"u" * (8 * 1024 - 1)
        + b" HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        + small * 200  # 20 KiB of pipelined requests
    )

    async def scenario(read_size: int) -> list[tuple[int, bytes]]:
        handler = Recorder()
        conn, transport = connected(handler)
        send_in_reads(conn, stream, read_size)
        return [status_and_body(w) for w in transport.written]

    for read_size in (len(stream), 65536, 4096, 7):
        answers = asyncio.run(scenario(read_size))
        assert (
            answers
            == [(200, b"ok 100000"), (200, b"ok 0"), (200, b"ok 0")] + [(200, b"ok 2")] * 200
        ), read_size


def test_a_head_that_does_not_complete_in_time_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_front, "HEAD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(http_front, "LINGER_S", 0.05)

    async def scenario() -> tuple[FakeTransport, FakeTransport, bool]:
        slow, slow_transport = connected(Recorder())
        idle, idle_transport = connected(Recorder())
        idle.data_received(head(b"Content-Length: 0\r\n"))  # answered; then idle keep-alive
        slow.data_received(b"POST /endpoints/ep/invocations HTTP/1.1\r\nX-Drip: ")
        for _ in range(12):  # a byte every 50 ms: reads do not extend a head's time
            await asyncio.sleep(0.05)
            slow.data_received(b"x")
        refused_during_drip = bool(slow_transport.written)
        await asyncio.sleep(0.3)
        return slow_transport, idle_transport, refused_during_drip

    slow_transport, idle_transport, refused_during_drip = asyncio.run(scenario())
    assert refused_during_drip  # at 0.3 s, before the drip ended (0.6 s)
    assert [status_and_body(w)[0] for w in slow_transport.written] == [408]
    assert b"Connection: close" in slow_transport.written[0] and slow_transport.closed
    assert len(idle_transport.written) == 1 and not idle_transport.closed


def test_a_body_that_stalls_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_front, "BODY_IDLE_S", 0.3)
    monkeypatch.setattr(http_front, "HEAD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(http_front, "LINGER_S", 0.05)

    async def scenario() -> tuple[FakeTransport, FakeTransport]:
        stalled, stalled_transport = connected(Recorder())
        steady, steady_transport = connected(Recorder())
        stalled.data_received(head(b"Content-Length: 100\r\n") + b"part")
        steady.data_received(head(b"Content-Length: 10\r\n") + b"a")
        for _ in range(9):  # a byte every 0.1 s: slower than the head's time, never idle
            await asyncio.sleep(0.1)
            steady.data_received(b"b")
        await asyncio.sleep(0.2)
        return stalled_transport, steady_transport

    stalled_transport, steady_transport = asyncio.run(scenario())
    assert [status_and_body(w)[0] for w in stalled_transport.written] == [408]
    assert stalled_transport.closed
    assert [status_and_body(w) for w in steady_transport.written] == [(200, b"ok 10")]
    assert not steady_transport.closed


def test_a_tarball_spec_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    """The memory of a model comes from its tarball's mlops.yaml, read within the spec limits:
    an oversized file is not parsed (the size on disk stands in for the declared memory)."""
    from mlops_cli.mme.endpoint_state import model_memory_mb

    padding = "# " + "x" * 1000 + "\n"
    (tmp_path / "mlops.yaml").write_text(
        "resources: {memory_mb: 64}\n" + padding * 2000, encoding="utf-8"
    )
    assert model_memory_mb(tmp_path, 3 * 2**20) == 3.0
    (tmp_path / "mlops.yaml").write_text("resources: {memory_mb: 64}\n", encoding="utf-8")
    assert model_memory_mb(tmp_path, 3 * 2**20) == 64.0


# -- follow-up: pipelined requests and trailer fields are bounded -----------------------------


def test_pipelined_requests_behind_one_in_service_pause_reading_at_the_cap() -> None:
    small = head(b"Content-Length: 2\r\n") + b"hi"

    async def scenario() -> tuple[Recorder, FakeTransport, int, int]:
        handler = Recorder(hold=True)
        conn, transport = connected(handler)
        fed = 0
        for _ in range(1000):  # one request a read; a paused transport delivers no more reads
            if transport.paused:
                break
            conn.data_received(small)
            fed += 1
        most_queued = len(conn.pending)
        assert transport.paused and len(handler.seen) == 1
        while handler.held:  # answered one by one: reading resumes as the queue drains
            handler.release()
            if not transport.paused and fed < 1000:
                conn.data_received(small)
                fed += 1
            most_queued = max(most_queued, len(conn.pending))
        return handler, transport, fed, most_queued

    handler, transport, fed, most_queued = asyncio.run(scenario())
    assert most_queued <= http_front.MAX_PENDING
    assert fed == 1000 and len(handler.seen) == 1000 and not transport.paused
    assert [status_and_body(w) for w in transport.written] == [(200, b"ok 2")] * 1000


def test_pipelined_requests_in_one_read_are_all_answered_in_order() -> None:
    async def scenario() -> tuple[Recorder, FakeTransport]:
        handler = Recorder(hold=True)
        conn, transport = connected(handler)
        conn.data_received(b"".join(head(b"Content-Length: 1\r\n") + b"%d" % i for i in range(5)))
        assert transport.paused and len(conn.pending) == 4  # at most the one read past the cap
        while handler.held:
            handler.release()
        return handler, transport

    handler, transport = asyncio.run(scenario())
    assert [r.body for r in handler.seen] == [b"%d" % i for i in range(5)]
    assert len(transport.written) == 5 and not transport.paused


def test_a_20_mb_trailer_of_a_chunked_body_is_refused_413_without_being_buffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tracemalloc

    monkeypatch.setattr(http_front, "LINGER_S", 0.05)
    stream = (
        head(b"Transfer-Encoding: chunked\r\n")
        + b"3\r\nabc\r\n0\r\nX-Trailer: "
        + b"t" * (20 << 20)  # the trailer never ends
    )

    async def scenario() -> tuple[Recorder, FakeTransport, int, int]:
        handler = Recorder()
        conn, transport = connected(handler)
        reads = 0
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for offset in range(0, len(stream), 1 << 20):
                conn.data_received(stream[offset : offset + (1 << 20)])
                reads += 1
                if transport.written:
                    break
            kept = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert transport.eof  # answered, lingering
        await asyncio.sleep(0.2)
        return handler, transport, reads, kept

    started = time.monotonic()
    handler, transport, reads, kept = asyncio.run(scenario())
    assert time.monotonic() - started < 5
    assert reads <= 7  # refused within MAX_BODY_BYTES + BODY_FRAMING_BYTES of raw body bytes
    assert handler.seen == [] and len(transport.written) == 1
    assert status_and_body(transport.written[0])[0] == 413 and transport.closed
    assert kept < MAX_BODY_BYTES + (1 << 20), f"{kept} bytes kept of a 20 MB trailer"


def test_trailer_fields_within_the_limit_pass_and_are_not_kept_as_headers() -> None:
    async def scenario() -> Recorder:
        handler = Recorder()
        conn, _ = connected(handler)
        conn.data_received(
            head(b"Transfer-Encoding: chunked\r\nContent-Type: text/csv\r\n")
            + b"3\r\nabc\r\n0\r\nContent-Type: evil\r\nX-Sum: 1\r\n\r\n"
        )
        return handler

    handler = asyncio.run(scenario())
    [request] = handler.seen
    assert request.body == b"abc" and request.header(b"content-type") == "text/csv"
    assert request.raw(b"x-sum") is None
