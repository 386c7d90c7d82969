"""Process facts read from /proc: liveness that survives pid reuse, process groups, memory."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    pgid: int
    state: str
    start_ticks: int
    rss_bytes: int
    argv: tuple[str, ...]


def process_info(pid: int) -> ProcessInfo | None:
    """Facts about ``pid``, or None when it does not exist (or is a zombie)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        statm = (_PROC / str(pid) / "statm").read_text().split()
        raw_argv = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in parentheses may contain spaces: split after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    state = fields[0]
    if state in {"Z", "X"}:
        _reap(pid)
        return None
    return ProcessInfo(
        pid=pid,
        pgid=int(fields[2]),
        state=state,
        start_ticks=int(fields[19]),
        rss_bytes=int(statm[1]) * os.sysconf("SC_PAGE_SIZE"),
        argv=tuple(part.decode(errors="replace") for part in raw_argv.split(b"\0") if part),
    )


def _reap(pid: int) -> None:
    """Collect a dead child of this process, if it is one; harmless otherwise."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_same_process(pid: int, start_ticks: int) -> bool:
    """True while ``pid`` is alive and is the process that started at ``start_ticks``."""
    info = process_info(pid)
    return info is not None and info.start_ticks == start_ticks


def group_members(pgid: int) -> list[ProcessInfo]:
    """Every live process of process group ``pgid``."""
    members = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = process_info(int(entry.name))
            if info is not None and info.pgid == pgid:
                members.append(info)
    return members


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def wait_gone(pgid: int, timeout: float) -> bool:
    """Wait until process group ``pgid`` has no live member; True when it has none."""
    deadline = time.monotonic() + timeout
    while True:
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def kill_group(pgid: int) -> None:
    """SIGKILL process group ``pgid`` and wait (up to 10 s) until its members are gone."""
    signal_group(pgid, signal.SIGKILL)
    wait_gone(pgid, 10.0)


def stop_group(pgid: int, timeout: float) -> bool:
    """SIGTERM process group ``pgid``, then SIGKILL what is left after ``timeout`` seconds; return
    once every member is gone. True when SIGTERM was enough."""
    signal_group(pgid, signal.SIGTERM)
    if wait_gone(pgid, timeout):
        return True
    kill_group(pgid)
    return False
