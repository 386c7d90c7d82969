"""The MME agent's logic without servers: safe extraction, event-stream framing, the LRU cache
within a memory budget (a fake container records loads and unloads)."""

from __future__ import annotations

import io
import shutil
import tarfile
import threading
import time
from pathlib import Path
from typing import cast

import pytest

from mlops_cli.mme.agent import Agent, container_name
from mlops_cli.mme.containers import Container, ContainerReply
from mlops_cli.mme.endpoint_state import EndpointState
from mlops_cli.mme.eventstream import decode_messages, model_stream_error, payload_part
from mlops_cli.mme.extract import UnsafeArchiveError, extract_tarball
from mlops_cli.mme.runtime_errors import AgentError
from tests.servers.mme_models import evil_tarball, make_model, tarball_bytes

pytestmark = pytest.mark.unit


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (member("../escape"), "leaves the archive's folder"),
        (member("/etc/escape"), "leaves the archive's folder"),
        (member("a/../../escape"), "leaves the archive's folder"),
        (member("link", tarfile.SYMTYPE, "../../etc/passwd"), "points outside"),
        (member("hard", tarfile.LNKTYPE, "/etc/passwd"), "points outside"),
        (member("dev", tarfile.CHRTYPE), "device or FIFO"),
        (member("fifo", tarfile.FIFOTYPE), "device or FIFO"),
    ],
)
def test_unsafe_members_refuse_the_whole_archive(
    tmp_path: Path, info: tarfile.TarInfo, reason: str
) -> None:
    archive = write_tar(tmp_path / "bad.tar.gz", [(member("ok.txt"), b"fine"), (info, b"x")])
    destination = tmp_path / "out" / "model"
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_tarball(archive, destination, what="bad")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert not (tmp_path / "escape").exists()


def test_safe_archive_with_an_inner_link_extracts(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "src", "m", version=3)
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(tarball_bytes(folder))
    size = extract_tarball(archive, tmp_path / "out", what="m")
    assert (tmp_path / "out" / "model.json").is_file() and size > 0


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(evil_tarball("x")[:40])
    with pytest.raises(UnsafeArchiveError, match="not a readable"):
        extract_tarball(archive, tmp_path / "out", what="bad")


def test_event_stream_frames_parse_with_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    data = payload_part(b'{"a": 1}') + payload_part(b"") + model_stream_error("boom")
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    messages = list(buffer)
    assert [m.headers[":message-type"] for m in messages] == ["event", "event", "exception"]
    assert messages[0].payload == b'{"a": 1}'
    assert next(payload for _, payload in decode_messages(data)) == b'{"a": 1}'


class FakeContainer:
    kind = "mms"
    url = "fake://"

    def __init__(self) -> None:
        self.loaded: set[str] = set()
        self.events: list[str] = []

    def load(self, name: str, model_dir: Path) -> None:
        self.loaded.add(name)
        self.events.append(f"load {name}")

    def unload(self, name: str) -> None:
        self.loaded.discard(name)
        self.events.append(f"unload {name}")

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        assert name in self.loaded
        return ContainerReply(200, name.encode(), "text/plain")

    def stop(self) -> None:
        pass


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Agent, FakeContainer]:
    """An agent whose S3 is a folder of tarballs (memory declared 64 MB each)."""
    tarballs = tmp_path / "s3"
    tarballs.mkdir()
    for name in ("a", "b", "c", "d"):
        folder = make_model(tmp_path / "src", name, memory_mb=64)
        (tarballs / f"{name}-v1.tar.gz").write_bytes(tarball_bytes(folder))
    container = FakeContainer()
    built = Agent(tmp_path / "work", lambda backend: cast(Container, container))

    def download(ep: EndpointState, target: str, into: Path) -> None:
        source = tarballs / target
        if not source.exists():
            raise AgentError(400, "ValidationError", "Failed to download model data")
        shutil.copyfile(source, into)

    monkeypatch.setattr(built, "_download", download)
    built.register("ep", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=130)
    return built, container


def test_lru_evicts_the_least_recently_used_and_counts(agent: tuple[Agent, FakeContainer]) -> None:
    mme, container = agent
    for target in ("a", "b", "a", "c", "b"):
        assert mme.invoke("ep", f"{target}-v1.tar.gz", b"{}", "", "").status == 200
    state = mme.endpoint("ep").describe()
    assert [m["target"] for m in state["loaded"]] == ["c-v1.tar.gz", "b-v1.tar.gz"]
    models = state["models"]
    assert (models["a-v1.tar.gz"]["loads"], models["a-v1.tar.gz"]["cache_hits"]) == (1, 1)
    assert (models["b-v1.tar.gz"]["loads"], models["b-v1.tar.gz"]["evictions"]) == (2, 1)
    a, b, c = (container_name("ep", f"{t}-v1.tar.gz") for t in "abc")
    assert container.events == [
        f"load {a}",
        f"load {b}",
        f"unload {b}",
        f"load {c}",
        f"unload {a}",
        f"load {b}",
    ]


def test_capacity_errors(agent: tuple[Agent, FakeContainer]) -> None:
    mme, _ = agent
    mme.register("tiny", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=10)
    with pytest.raises(AgentError) as caught:
        mme.invoke("tiny", "a-v1.tar.gz", b"{}", "", "")
    assert caught.value.status == 507
    with pytest.raises(AgentError) as missing:
        mme.invoke("ep", "zzz-v1.tar.gz", b"{}", "", "")
    assert missing.value.status == 400
    with pytest.raises(AgentError) as unknown:
        mme.invoke("nope", "a-v1.tar.gz", b"{}", "", "")
    assert "Endpoint nope" in unknown.value.message
    with pytest.raises(AgentError, match="Invalid TargetModel"):
        mme.invoke("ep", "../a-v1.tar.gz", b"{}", "", "")


def test_busy_models_are_not_evicted(agent: tuple[Agent, FakeContainer]) -> None:
    mme, container = agent
    mme.memory_wait_s = 0.2  # how long a load waits for a busy model to finish
    mme.invoke("ep", "a-v1.tar.gz", b"{}", "", "")
    mme.invoke("ep", "b-v1.tar.gz", b"{}", "", "")
    ep = mme.endpoint("ep")
    for model in ep.loaded.values():
        model.inflight += 1  # both serving requests
    with pytest.raises(AgentError) as caught:
        mme.invoke("ep", "c-v1.tar.gz", b"{}", "", "")
    assert (caught.value.status, caught.value.code) == (429, "ModelNotReadyException")
    assert container.loaded == {container_name("ep", f"{t}-v1.tar.gz") for t in "ab"}


def test_concurrent_first_calls_load_once(agent: tuple[Agent, FakeContainer]) -> None:
    mme, container = agent
    threads = [
        threading.Thread(target=mme.invoke, args=("ep", "d-v1.tar.gz", b"{}", "", ""))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert container.events == [f"load {container_name('ep', 'd-v1.tar.gz')}"]
    metrics = mme.endpoint("ep").describe()["models"]["d-v1.tar.gz"]
    assert (metrics["loads"], metrics["cache_hits"], metrics["invocations"]) == (1, 7, 8)


# -- issue 15: a load lasts until the first answer; no cache; the disk budget ------------------


def test_a_load_that_fails_until_the_first_answer_is_remembered_with_its_reason(
    agent: tuple[Agent, FakeContainer], monkeypatch: pytest.MonkeyPatch
) -> None:
    mme, container = agent
    answers = iter(
        [ContainerReply(500, b"\nmodel_fn failed: weights missing\ntrace", "text/plain")]
    )

    def invoke(name: str, body: bytes, content_type: str, accept: str) -> ContainerReply:
        return next(answers, ContainerReply(200, name.encode(), "text/plain"))

    monkeypatch.setattr(container, "invoke", invoke)
    with pytest.raises(AgentError) as caught:
        mme.invoke("ep", "a-v1.tar.gz", b"{}", "", "")
    assert caught.value.code == "ModelError"
    models = mme.endpoint("ep").describe()["models"]
    assert models["a-v1.tar.gz"]["last_load_error"] == "model_fn failed: weights missing"
    assert mme.invoke("ep", "a-v1.tar.gz", b"{}", "", "").status == 200  # it answered: loaded
    assert mme.endpoint("ep").describe()["models"]["a-v1.tar.gz"]["last_load_error"] is None
    with pytest.raises(AgentError) as missing:  # a failed fetch is a failed load too
        mme.invoke("ep", "zzz-v1.tar.gz", b"{}", "", "")
    reason = mme.endpoint("ep").describe()["models"]["zzz-v1.tar.gz"]["last_load_error"]
    assert reason == missing.value.message


def test_with_the_model_cache_off_a_model_is_unloaded_once_answered(
    agent: tuple[Agent, FakeContainer],
) -> None:
    mme, container = agent
    mme.register(
        "nocache", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=500, model_cache=False
    )
    folder = mme.workdir / "models" / "nocache"
    for _ in range(2):
        assert mme.invoke("nocache", "a-v1.tar.gz", b"{}", "", "").status == 200
        assert not mme.endpoint("nocache").loaded  # at once, for the next request
        deadline = time.monotonic() + 5
        while list(folder.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not list(folder.iterdir())  # and the files once the container has unloaded it
    name = container_name("nocache", "a-v1.tar.gz")
    assert container.events == [f"load {name}", f"unload {name}"] * 2


def test_the_disk_budget_evicts_idle_models_and_refuses_what_can_never_fit(
    agent: tuple[Agent, FakeContainer],
) -> None:
    mme, _ = agent
    size = mme_disk(mme, "a")  # what one extracted model takes
    mme.register(
        "disk",
        s3_prefix="s3://b/p/",
        backend="mms",
        memory_budget_mb=1000,
        disk_budget_mb=1.5 * size / 2**20,
    )  # one fits on disk, not two
    mme.invoke("disk", "a-v1.tar.gz", b"{}", "", "")
    mme.invoke("disk", "b-v1.tar.gz", b"{}", "", "")
    state = mme.endpoint("disk").describe()
    assert [m["target"] for m in state["loaded"]] == ["b-v1.tar.gz"]
    assert state["models"]["a-v1.tar.gz"]["evictions"] == 1
    mme.register(
        "none",
        s3_prefix="s3://b/p/",
        backend="mms",
        memory_budget_mb=1000,
        disk_budget_mb=0.5 * size / 2**20,
    )
    with pytest.raises(AgentError) as caught:
        mme.invoke("none", "a-v1.tar.gz", b"{}", "", "")
    assert (caught.value.status, caught.value.code) == (507, "InsufficientStorage")
    assert "Nothing was written" in caught.value.message
    assert not (mme.workdir / "models" / "none").exists()


def mme_disk(mme: Agent, name: str) -> int:
    mme.register("probe", s3_prefix="s3://b/p/", backend="mms", memory_budget_mb=1000)
    mme.invoke("probe", f"{name}-v1.tar.gz", b"{}", "", "")
    size = mme.endpoint("probe").loaded[f"{name}-v1.tar.gz"].disk_bytes
    mme.unload("probe", f"{name}-v1.tar.gz")
    return size
