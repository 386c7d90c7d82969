"""Tenant isolation (issue 12, item 1): naming a version or an alias never skips visibility, and no
route sends a tenant to a model private to others. The registry rules run on both backends
(SQLite, and DynamoDB on the real moto server); the command line on a real tritonserver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_cli.errors import NotFoundError
from mlops_cli.registry import Registry
from mlops_cli.registry.base import PrivateModelError
from mlops_cli.registry.routing import Router, resolve_reference
from tests.cli import error_line, run
from tests.conformance.conftest import BACKENDS, make_target, register, snapshot
from tests.integration.test_deploy import env, register_answer  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration]

MODEL = "fraud-detector"


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    return make_target(request.param, request, tmp_path).open()


def _not_found_line(call: Any) -> str:
    with pytest.raises(NotFoundError) as caught:
        call()
    return f"{caught.value.message} (hint: {caught.value.hint})"


@pytest.mark.parametrize("selector", ["", "@1", "@2", "@production", "@staging", "@9"])
def test_a_private_model_does_not_exist_for_other_tenants_whatever_is_named(
    registry: Registry, selector: str
) -> None:
    register(registry, MODEL, "p1", "p2")
    register(registry, "other", "o1")
    registry.set_alias(MODEL, "production", 1)
    registry.set_alias(MODEL, "staging", 2)
    registry.update_model(MODEL, private_to=("acme",))
    unknown = _not_found_line(lambda: resolve_reference(registry, "ghost@1", tenant="globex"))

    hidden = _not_found_line(lambda: resolve_reference(registry, MODEL + selector, tenant="globex"))

    assert hidden == unknown.replace("ghost", MODEL)  # word for word what an unknown model says
    if selector in ("", "@1", "@2", "@production", "@staging"):
        assert resolve_reference(registry, MODEL + selector, tenant="acme").version in (1, 2)
        assert resolve_reference(registry, MODEL + selector, tenant=None).version in (1, 2)
    assert resolve_reference(registry, "other@1", tenant="globex").version == 1


def test_router_and_resolution_agree_on_visibility(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    registry.set_route("globex", MODEL, version=1)  # routed while the model was public
    registry.update_model(MODEL, private_to=("acme",))

    for call in (
        lambda: Router(registry).resolve("globex", MODEL),
        lambda: resolve_reference(registry, MODEL, tenant="globex"),
        lambda: resolve_reference(registry, f"{MODEL}@1", tenant="globex"),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert Router(registry).resolve("acme", MODEL).version == 1


def test_route_set_to_a_model_private_to_others_is_refused(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    registry.update_model(MODEL, private_to=("acme",))
    before = snapshot(registry)

    for kwargs in ({"version": 1}, {"alias": "production"}):
        with pytest.raises(PrivateModelError) as caught:
            registry.set_route("globex", MODEL, **kwargs)  # type: ignore[arg-type]
        assert caught.value.exit_code == 2 and "private" in caught.value.message

    assert snapshot(registry) == before
    assert registry.set_route("acme", MODEL, version=1).version == 1
    registry.update_model(MODEL, private_to=())
    assert registry.set_route("globex", MODEL, version=1).version == 1


def test_invoke_as_another_tenant_answers_nothing(
    env: Any,  # noqa: F811 (fixture)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register_answer(capsys, tmp_path, 1, alias="production")
    run(capsys, "deploy", "answer@1", "--drain", "0")
    run(capsys, "models", "update", "answer", "--private-to", "acme")
    request = ("--input", '{"x": [0]}')

    mine = run(capsys, "invoke", "answer@1", "--tenant", "acme", *request)
    assert mine["outputs"]["y"] == [1.0]

    unknown = error_line(capsys, "invoke", "ghost@1", "--tenant", "globex", *request, code=1)
    for ref in ("answer", "answer@1", "answer@production"):
        line = error_line(capsys, "invoke", ref, "--tenant", "globex", *request, code=1)
        assert line == unknown.replace("ghost", "answer")
        assert run(capsys, "invoke", ref, "--tenant", "globex", *request, code=1)["error"][
            "type"
        ] == ("NotFoundError")

    line = error_line(capsys, "route", "set", "globex", "answer", "1", code=2)
    assert "private" in line and "(hint: " in line
    assert run(capsys, "route", "list") == []

    undeployed = _human(capsys, "undeploy", "answer")
    assert "undeployed answer v1 from local" in undeployed


def _human(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from mlops_cli.cli.main import main

    assert main(list(args)) == 0
    return capsys.readouterr().out
