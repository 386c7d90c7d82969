"""Child-process bodies for ``test_races.py`` (a module of their own so that a spawned child
imports only the standard library and mlops_cli, not pytest and the test module).

Every child reports on ``results`` exactly what it saw; on an unexpected exception it reports it
and aborts the shared barrier, so its siblings stop at once instead of waiting out the timeout.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from mlops_cli.errors import ConflictError
from mlops_cli.registry.base import NewVersion


def _open(uri: str, env: dict[str, str]) -> Any:
    os.environ.update(env)
    from mlops_cli.registry import open_registry

    registry = open_registry(uri)  # the parent has initialised it
    registry.list_models()  # open the connection or client before the race starts
    return registry


def register_one(
    uri: str,
    env: dict[str, str],
    model: str,
    index: int,
    new: NewVersion,
    barrier: Any,
    results: Any,
    timeout: float,
) -> None:
    """Register ``new`` as soon as every sibling is ready; report (index, version, created)."""
    try:
        registry = _open(uri, env)
        barrier.wait(timeout)
        registered = registry.register_version(model, new)
        results.put(("ok", index, registered.version.version, registered.created))
    except BaseException:
        barrier.abort()
        results.put(("error", index, traceback.format_exc(), None))


def race_alias(
    uri: str,
    env: dict[str, str],
    model: str,
    alias: str,
    index: int,
    targets: list[int],
    barrier: Any,
    results: Any,
    timeout: float,
) -> None:
    """One CAS attempt per round: read the alias, wait until every sibling has read it, then try
    to move it to this child's version for the round. Report (round, seen, outcome, record)."""
    try:
        registry = _open(uri, env)
        for round_no, target in enumerate(targets):
            barrier.wait(timeout)  # the previous round's writes are all done
            seen = registry.get_alias(model, alias).version
            barrier.wait(timeout)  # everyone has read before anyone writes
            try:
                record = registry.set_alias(model, alias, target, expect_version=seen)
            except ConflictError:
                results.put(("lost", index, round_no, seen, None, None))
            else:
                results.put(("won", index, round_no, seen, record.version, record.revision))
    except BaseException:
        barrier.abort()
        results.put(("error", index, traceback.format_exc(), None, None, None))
