"""Tenant resolution (``mlops_cli.registry.routing``) over every backend's routing state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from mlops_cli.errors import NotFoundError
from mlops_cli.registry import Registry
from mlops_cli.registry.routing import Router, resolve, resolve_state
from tests.conformance.conftest import register

pytestmark = [pytest.mark.integration]

MODEL = "fraud-detector"
REQUESTS = 100_000


def test_precedence_route_version_then_route_alias_then_default_alias(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3")
    registry.set_alias(MODEL, "production", 1)
    registry.set_alias(MODEL, "staging", 2)

    by_default = resolve(registry, "acme", MODEL)
    assert (by_default.version, by_default.source, by_default.alias) == (1, "alias", "production")

    registry.set_route("acme", MODEL, alias="staging")
    by_alias = resolve(registry, "acme", MODEL)
    assert (by_alias.version, by_alias.source, by_alias.alias) == (2, "route", "staging")

    registry.set_route("acme", MODEL, version=3)
    by_version = resolve(registry, "acme", MODEL)
    assert (by_version.version, by_version.source, by_version.alias) == (3, "route", None)
    assert by_version.routing_revision == registry.routing_revision(MODEL)

    other = resolve(registry, "globex", MODEL)  # no route of its own
    assert (other.version, other.source) == (1, "alias")

    registry.update_model(MODEL, default_alias="staging")
    assert resolve(registry, "globex", MODEL).version == 2
    registry.set_alias(MODEL, "staging", 3)
    assert resolve(registry, "globex", MODEL).version == 3


def test_no_route_and_no_default_alias_is_not_found_with_a_hint(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "staging", 1)

    with pytest.raises(NotFoundError) as caught:
        resolve(registry, "acme", MODEL)

    assert "production" in str(caught.value)
    assert caught.value.hint and "mlops" in caught.value.hint
    with pytest.raises(NotFoundError):
        resolve(registry, "acme", "absent-model")


@pytest.mark.parametrize("percent", [5.0, 37.5])
def test_canary_share_matches_the_requested_percent(registry: Registry, percent: float) -> None:
    register(registry, MODEL, "p1", "p2")
    registry.set_route("acme", MODEL, version=1, canary_version=2, canary_percent=percent)
    state = registry.routing_state("acme", MODEL)  # read once; resolve_state is pure

    canary = sum(resolve_state(state, "acme", f"request-{i}").version == 2 for i in range(REQUESTS))

    assert abs(100 * canary / REQUESTS - percent) <= 2.0
    assert resolve_state(state, "acme").version == 1  # no request key: the main version
    answers = {resolve(registry, "acme", MODEL, "request-42").version for _ in range(5)}
    assert len(answers) == 1
    sides = {resolve_state(state, "acme", f"request-{i}").source for i in range(200)}
    assert sides == {"route", "canary"}


def test_private_model_resolves_only_for_listed_tenants(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    registry.update_model(MODEL, private_to=("acme-bank", "globex-trust"))

    assert resolve(registry, "acme-bank", MODEL).version == 1
    assert resolve(registry, "globex-trust", MODEL).version == 1
    for resolver in (
        lambda: resolve(registry, "initech", MODEL),
        lambda: Router(registry).resolve("initech", MODEL),
    ):
        with pytest.raises(NotFoundError) as caught:
            resolver()
        said = f"{caught.value} {caught.value.hint or ''}"
        assert "acme-bank" not in said and "globex-trust" not in said

    registry.update_model(MODEL, private_to=())
    assert resolve(registry, "initech", MODEL).version == 1


class CallCounter:
    """Counts calls of some of an object's methods (wrapped on the instance, then delegated)."""

    def __init__(
        self, target: Any, names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.calls = dict.fromkeys(names, 0)
        for name in names:
            monkeypatch.setattr(target, name, self._wrap(name, getattr(target, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted

    def take(self) -> dict[str, int]:
        """The counts since the last take."""
        counts = dict(self.calls)
        self.calls = dict.fromkeys(self.calls, 0)
        return counts


def test_router_cache_reads_only_what_it_must(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ttl = 0.8
    register(registry, MODEL, "p1", "p2")
    registry.set_alias(MODEL, "production", 1)
    counter = CallCounter(registry, ("routing_state", "routing_revision"), monkeypatch)
    router = Router(registry, ttl=ttl)

    assert router.resolve("acme", MODEL).version == 1
    assert counter.take() == {"routing_state": 1, "routing_revision": 0}

    assert router.resolve("acme", MODEL, "request-1").version == 1  # within the TTL
    assert counter.take() == {"routing_state": 0, "routing_revision": 0}

    time.sleep(ttl * 1.2)
    assert router.resolve("acme", MODEL).version == 1  # expired, nothing changed
    assert counter.take() == {"routing_state": 0, "routing_revision": 1}

    registry.set_alias(MODEL, "production", 2)
    assert router.resolve("acme", MODEL).version == 1  # still within the renewed TTL
    assert counter.take() == {"routing_state": 0, "routing_revision": 0}

    time.sleep(ttl * 1.2)
    moved = router.resolve("acme", MODEL)
    assert moved.version == 2
    assert moved.routing_revision == registry.routing_revision(MODEL)
    assert counter.take() == {"routing_state": 1, "routing_revision": 2}  # incl. the line above
