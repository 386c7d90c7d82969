"""The fleet lock: every deploy and undeploy to a shared target holds the target's lease in the
registry (:mod:`mlops_cli.deploy.lease`).

The lease's own behaviour (waiting, renewing, losing, releasing) runs on a real SQLite registry;
the lock in use runs real ``mlops deploy`` processes against a fleet file over the session's
local tritonserver: two concurrent deploys take turns without interleaving their loads, and a
lease left by a process killed with SIGKILL expires after its ttl (``MLOPS_LEASE_TTL_S``), after
which the next deploy proceeds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.deploy.lease import TTL_ENV, hold, lease_ttl_s
from mlops_cli.errors import UsageError
from mlops_cli.progress import SilentReporter
from mlops_cli.registry import Registry, open_registry
from mlops_cli.registry.base import LeaseHeldError, LeaseLostError
from mlops_cli.registry.coordination import utc
from tests.cli import run
from tests.conftest import FIXTURES, triton_request

pytestmark = pytest.mark.integration

NAME = "target:triton:lock-fleet"
OTHER = "someone-else:1:00000000"
DEADLINE_S = 240.0


class Notes(SilentReporter):
    """A reporter that keeps the notes it is given."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    found = open_registry(f"sqlite:///{tmp_path / 'leases.db'}")
    found.init()
    return found


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.02)


# -- the lease held by a process -------------------------------------------------------------


def test_a_hold_renews_past_its_ttl_and_releases_on_exit(registry: Registry) -> None:
    with hold(registry, NAME, ttl_s=0.6) as held:
        first = registry.get_lease(NAME)
        time.sleep(1.5)  # more than two ttls: only renewals keep it
        later = registry.get_lease(NAME)
        assert first is not None and later is not None
        assert later.holder == first.holder == held.holder
        assert later.revision > first.revision and later.expires_at > time.time()
        assert not held.lost
        held.check()

    assert registry.get_lease(NAME) is None


def test_a_hold_whose_lease_was_taken_is_lost_at_the_next_check(registry: Registry) -> None:
    notes = Notes()
    with hold(registry, NAME, ttl_s=0.6, reporter=notes) as held:
        # Another holder whose clock says the lease expired (as if this process had stalled).
        registry.acquire_lease(NAME, OTHER, 30, now=time.time() + 60)
        wait_until(lambda: held.lost, 5, "the renewal did not notice the loss")
        with pytest.raises(LeaseLostError, match=OTHER):
            held.check()

    stored = registry.get_lease(NAME)
    assert stored is not None and stored.holder == OTHER  # the release left it alone
    assert any("lost the lock" in note and OTHER in note for note in notes.notes), notes.notes


def test_a_held_lease_is_waited_for_then_refused_naming_holder_and_expiry(
    registry: Registry,
) -> None:
    held = registry.acquire_lease(NAME, OTHER, 30)
    notes = Notes()
    started = time.monotonic()

    with pytest.raises(LeaseHeldError) as refused, hold(registry, NAME, wait_s=0.6, reporter=notes):
        pytest.fail("the body ran without the lease")

    assert time.monotonic() - started >= 0.6
    message = str(refused.value)
    assert OTHER in message and utc(held.expires_at) in message and "waited" in message
    assert [n for n in notes.notes if f"held by {OTHER}" in n], notes.notes
    assert registry.get_lease(NAME) == held


def test_a_waiting_hold_gets_the_lease_once_it_is_released(registry: Registry) -> None:
    registry.acquire_lease(NAME, OTHER, 30)
    releaser = threading.Timer(0.5, registry.release_lease, args=(NAME, OTHER))
    releaser.start()
    notes = Notes()

    with hold(registry, NAME, wait_s=20, reporter=notes) as held:
        stored = registry.get_lease(NAME)
        assert stored is not None and stored.holder == held.holder != OTHER

    assert any(note.startswith(f"took {NAME}") for note in notes.notes), notes.notes
    releaser.join()


def test_the_ttl_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lease_ttl_s({}) == 60.0
    assert lease_ttl_s({TTL_ENV: "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan", "1e9"):
        with pytest.raises(UsageError, match=TTL_ENV):
            lease_ttl_s({TTL_ENV: bad})


# -- the lock in use: real deploy processes on a fleet over the local tritonserver ------------


@dataclass
class Fleet:
    file: Path
    repository: Path
    url: str
    registry: Registry
    env: dict[str, str]


@pytest.fixture
def fleet(local_triton: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """A fleet file naming the session's local Triton (and its repository), a registry and a
    store of this test's own, and the environment a deploy process needs."""
    registry_uri = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLOPS_REGISTRY", registry_uri)
    monkeypatch.setenv("MLOPS_STORE", f"file://{tmp_path / 'store'}")
    state = local_triton.read_state()
    server = {
        "name": "local",
        "url": state.http_url,
        "grpc_url": f"127.0.0.1:{state.grpc_port}",
        "memory_mb": 100_000,
    }
    document = {"name": "lock-fleet", "repository": state.model_repository, "servers": [server]}
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(json.dumps(document))
    env = dict(os.environ, COLUMNS="400")  # notes on one line each
    registry = open_registry(registry_uri)
    registry.init()
    return Fleet(fleet_file, Path(state.model_repository), state.http_url, registry, env)


def register_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, *, load_s: float = 0
) -> str:
    """Register a copy of the ``answer`` model named ``name`` whose load takes ``load_s``
    seconds; the name the fleet serves its version 1 under."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / "models" / "answer", folder)
    spec = folder / "mlops.yaml"
    spec.write_text(spec.read_text().replace("name: answer", f"name: {name}"))
    code = folder / "model.py"
    slow = f"    def initialize(self, args):\n        import time\n        time.sleep({load_s})\n"
    code.write_text(code.read_text().replace("    def initialize(self, args):\n", slow))
    run(capsys, "register", str(folder))
    return f"{name}-v1"


def ready(url: str) -> set[str]:
    index = triton_request(url, "/v2/repository/index", {}) or []
    assert isinstance(index, list)
    return {entry["name"] for entry in index if entry.get("state") == "READY"}


def mlops(fleet: Fleet, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "mlops_cli", *args, "--target", "triton"]
    command += ["--fleet", str(fleet.file), "--verbose"]
    return subprocess.Popen(
        command,
        env=env or fleet.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def holder_pid(holder: str) -> int:
    return int(holder.split(":")[-2])


@dataclass
class Sample:
    holder_before: str | None
    present: set[str]  # model folders in the repository
    ready: set[str]
    holder_after: str | None


@dataclass
class Observer:
    """Samples the lease and the server every 20 ms: the holder, then what the repository holds
    and what is READY, then the holder again."""

    fleet: Fleet
    names: tuple[str, ...]
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def holder(self) -> str | None:
        lease = self.fleet.registry.get_lease(NAME)
        return lease.holder if lease is not None else None

    def watch(self) -> None:
        while not self.stop.wait(0.02):
            before = self.holder()
            present = {n for n in self.names if (self.fleet.repository / n).exists()}
            served = ready(self.fleet.url) & set(self.names)
            self.samples.append(Sample(before, present, served, self.holder()))

    def holders(self) -> list[str]:
        """The holders seen, in order, each once per turn."""
        turns: list[str] = []
        for sample in self.samples:
            for holder in (sample.holder_before, sample.holder_after):
                if holder is not None and (not turns or turns[-1] != holder):
                    turns.append(holder)
        return turns


@contextmanager
def observing(fleet: Fleet, names: tuple[str, ...]) -> Iterator[Observer]:
    observer = Observer(fleet, names)
    thread = threading.Thread(target=observer.watch, daemon=True)
    thread.start()
    try:
        yield observer
    finally:
        observer.stop.set()
        thread.join(timeout=10)


@pytest.mark.slow
def test_two_concurrent_deploys_to_one_fleet_take_turns(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = (
        register_model(capsys, tmp_path, "slow-a", load_s=3),
        register_model(capsys, tmp_path, "slow-b", load_s=3),
    )

    with observing(fleet, names) as observer:
        processes = [mlops(fleet, "deploy", "slow-a"), mlops(fleet, "deploy", "slow-b")]
        outcomes = [p.communicate(timeout=DEADLINE_S) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outcomes
    assert ready(fleet.url) >= set(names)
    assert fleet.registry.get_lease(NAME) is None  # both released
    # Two turns, one per process, never back to the first.
    turns = observer.holders()
    by_pid = {p.pid: index for index, p in enumerate(processes)}
    assert len(turns) == 2 and {holder_pid(h) for h in turns} == set(by_pid), turns
    first, second = (by_pid[holder_pid(h)] for h in turns)
    assert f"held by {turns[0]}" in outcomes[second][1], outcomes[second][1]
    # A load in progress (its folder written, not READY yet) is always the holder's own, and
    # never two at once: the loads did not interleave.
    in_progress: dict[int, int] = {first: 0, second: 0}
    for sample in observer.samples:
        loading = [i for i, name in enumerate(names) if name in sample.present - sample.ready]
        assert len(loading) <= 1, sample
        steady = sample.holder_before == sample.holder_after is not None
        if loading and steady:
            assert by_pid[holder_pid(sample.holder_before or "")] == loading[0], sample
            in_progress[loading[0]] += 1
    assert min(in_progress.values()) >= 5, in_progress  # both loads were seen, many times
    # The second load began after the first model was READY.
    began = next(i for i, s in enumerate(observer.samples) if names[second] in s.present)
    assert names[first] in observer.samples[began].ready


@pytest.mark.slow
def test_a_killed_holders_lease_expires_and_the_next_deploy_proceeds(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = register_model(capsys, tmp_path, "answer")
    env = dict(fleet.env, **{TTL_ENV: "4"})
    script = (
        "import sys, time\n"
        "from mlops_cli.registry import open_registry\n"
        "from mlops_cli.deploy.lease import hold\n"
        "with hold(open_registry(sys.argv[1]), sys.argv[2], wait_s=0) as held:\n"
        "    print(held.holder, flush=True)\n"
        "    time.sleep(600)\n"
    )
    helper = subprocess.Popen(
        [sys.executable, "-c", script, env["MLOPS_REGISTRY"], NAME],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert helper.stdout is not None
        holder = helper.stdout.readline().strip()
        time.sleep(2)  # a renewal or two
    finally:
        helper.send_signal(signal.SIGKILL)
        helper.wait(timeout=30)
    dead = fleet.registry.get_lease(NAME)
    assert dead is not None and dead.holder == holder and dead.revision >= 2

    # Without waiting: refused in one line naming the holder and its expiry; nothing changed.
    refused = mlops(fleet, "deploy", "answer", "--lock-wait", "0", env=env)
    out, err = refused.communicate(timeout=DEADLINE_S)
    lines = err.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1, (out, err)
    assert holder in lines[0] and utc(dead.expires_at) in lines[0]
    assert fleet.registry.list_deployments() == [] and fleet.registry.get_lease(NAME) == dead
    assert not (fleet.repository / name).exists() and name not in ready(fleet.url)

    # Waiting: the dead holder's lease expires (no renewals) and the deploy proceeds.
    proceeding = mlops(fleet, "deploy", "answer", "--lock-wait", "60", env=env)
    out, err = proceeding.communicate(timeout=DEADLINE_S)
    assert proceeding.returncode == 0, (out, err)
    assert f"held by {holder}" in err and time.time() >= dead.expires_at
    assert name in ready(fleet.url)
    assert [d.version for d in fleet.registry.list_deployments("answer")] == [1]
    assert fleet.registry.get_lease(NAME) is None

    # An undeploy takes the same lock.
    with hold(fleet.registry, NAME, holder=OTHER, wait_s=0):
        blocked = mlops(fleet, "undeploy", "answer", "--lock-wait", "0", env=env)
        out, err = blocked.communicate(timeout=DEADLINE_S)
        assert blocked.returncode == 1 and OTHER in err, (out, err)
        assert name in ready(fleet.url)
    done = mlops(fleet, "undeploy", "answer", env=env)
    out, err = done.communicate(timeout=DEADLINE_S)
    assert done.returncode == 0, (out, err)
    assert name not in ready(fleet.url) and fleet.registry.list_deployments() == []
