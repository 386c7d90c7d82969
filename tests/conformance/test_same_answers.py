"""Both backends, given the same operations, give the same answers.

One script of calls (including calls that must fail) runs against a SQLite and a DynamoDB
registry; each step's answer is its result's ``to_dict()`` with times left out, or the error it
raised: its class, its message and its hint. The answers must be identical, step by step, so the
rules and their words (``mlops_cli/registry/rules.py``) cannot drift apart between backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_cli.errors import MlopsError
from mlops_cli.registry import Registry
from mlops_cli.registry.routing import resolve
from tests.conformance.conftest import make_target, package

pytestmark = [pytest.mark.integration]

MODEL = "fraud-detector"
TIMES = {"created_at", "updated_at"}

Step = tuple[str, Callable[[Registry], Any]]

SCRIPT: list[Step] = [
    (
        "register p1",
        lambda r: r.register_version(
            MODEL, package("p1", tags={"team": "risk"}), model_description="cards"
        ),
    ),
    ("register p2", lambda r: r.register_version(MODEL, package("p2"))),
    ("register p3 @staging", lambda r: r.register_version(MODEL, package("p3"), alias="staging")),
    ("register p1 again", lambda r: r.register_version(MODEL, package("p1"))),
    ("register p1 new", lambda r: r.register_version(MODEL, package("p1"), new_version=True)),
    ("register bad model", lambda r: r.register_version("Fraud Detector", package("p9"))),
    ("register bad alias", lambda r: r.register_version(MODEL, package("p9"), alias="Live")),
    ("register other model", lambda r: r.register_version("churn", package("p2"))),
    ("get model", lambda r: r.get_model(MODEL)),
    ("get bad model name", lambda r: r.get_model("Bad Name")),
    ("get absent model", lambda r: r.get_model("absent")),
    ("get absent version", lambda r: r.get_version(MODEL, 42)),
    ("list models", lambda r: r.list_models()),
    ("list versions", lambda r: r.list_versions(MODEL)),
    ("list versions absent", lambda r: r.list_versions("absent")),
    ("by digest", lambda r: r.find_versions_by_digest(package("p1").package_digest)),
    ("by shared digest", lambda r: r.find_versions_by_digest(package("p2").package_digest)),
    ("by unknown digest", lambda r: r.find_versions_by_digest("f" * 64)),
    ("metrics", lambda r: r.set_version_metrics(MODEL, 2, memory_mb=256.0, latency_ms=3.5)),
    ("alias production", lambda r: r.set_alias(MODEL, "production", 1)),
    ("alias to missing version", lambda r: r.set_alias(MODEL, "production", 42)),
    ("alias on absent model", lambda r: r.set_alias("absent", "production", 1)),
    ("alias bad name", lambda r: r.set_alias(MODEL, "9lives", 1)),
    ("alias cas right", lambda r: r.set_alias(MODEL, "production", 2, expect_version=1)),
    ("alias cas wrong", lambda r: r.set_alias(MODEL, "production", 3, expect_version=1)),
    ("alias cas absent ok", lambda r: r.set_alias(MODEL, "shadow", 3, expect_version="absent")),
    ("alias cas absent wrong", lambda r: r.set_alias(MODEL, "shadow", 1, expect_version="absent")),
    ("alias cas on missing alias", lambda r: r.set_alias(MODEL, "ghost", 1, expect_version=1)),
    ("get alias", lambda r: r.get_alias(MODEL, "production")),
    ("get absent alias", lambda r: r.get_alias(MODEL, "ghost")),
    ("list aliases", lambda r: r.list_aliases(MODEL)),
    ("route acme version", lambda r: r.set_route("acme", MODEL, version=1)),
    ("route globex alias", lambda r: r.set_route("globex", MODEL, alias="staging")),
    (
        "route initech canary",
        lambda r: r.set_route("initech", MODEL, version=2, canary_version=3, canary_percent=25),
    ),
    ("route acme churn", lambda r: r.set_route("acme", "churn", version=1)),
    (
        "route cas right",
        lambda r: r.set_route(
            "acme", MODEL, version=2, expect_revision=r.get_route("acme", MODEL).revision
        ),
    ),
    ("route cas wrong", lambda r: r.set_route("acme", MODEL, version=3, expect_revision=99)),
    ("route absent model", lambda r: r.set_route("acme", "absent", version=1)),
    ("route missing version", lambda r: r.set_route("acme", MODEL, version=42)),
    ("route missing alias", lambda r: r.set_route("acme", MODEL, alias="ghost")),
    (
        "route missing canary",
        lambda r: r.set_route("acme", MODEL, version=1, canary_version=42, canary_percent=5),
    ),
    ("route cas absent", lambda r: r.set_route("hooli", MODEL, version=1, expect_revision=3)),
    ("route cas new", lambda r: r.set_route("hooli", MODEL, version=1, expect_revision=0)),
    ("route cas exists", lambda r: r.set_route("hooli", MODEL, version=2, expect_revision=0)),
    ("unroute hooli", lambda r: r.delete_route("hooli", MODEL)),
    ("route missing alias on absent", lambda r: r.set_route("acme", "absent", alias="ghost")),
    ("route version and alias", lambda r: r.set_route("acme", MODEL, version=1, alias="staging")),
    ("route bad tenant", lambda r: r.set_route("acme corp", MODEL, version=1)),
    (
        "route bad percent",
        lambda r: r.set_route("acme", MODEL, version=1, canary_version=2, canary_percent=101),
    ),
    ("get route", lambda r: r.get_route("initech", MODEL)),
    ("get absent route", lambda r: r.get_route("nobody", MODEL)),
    ("list routes", lambda r: r.list_routes()),
    ("list routes acme", lambda r: r.list_routes(tenant="acme")),
    ("list routes model", lambda r: r.list_routes(model=MODEL)),
    ("list routes both", lambda r: r.list_routes(tenant="globex", model=MODEL)),
    ("state acme", lambda r: r.routing_state("acme", MODEL)),
    ("state globex", lambda r: r.routing_state("globex", MODEL)),
    ("state initech", lambda r: r.routing_state("initech", MODEL)),
    ("state nobody", lambda r: r.routing_state("nobody", MODEL)),
    ("state absent model", lambda r: r.routing_state("acme", "absent")),
    ("resolve acme", lambda r: resolve(r, "acme", MODEL)),
    ("resolve globex", lambda r: resolve(r, "globex", MODEL)),
    ("resolve initech keys", lambda r: [resolve(r, "initech", MODEL, f"k{i}") for i in range(20)]),
    ("resolve nobody", lambda r: resolve(r, "nobody", MODEL)),
    (
        "record deployment",
        lambda r: r.record_deployment(MODEL, 4, "triton:local", detail={"url": "http://x"}),
    ),
    (
        "record deployment missing",
        lambda r: r.record_deployment(MODEL, 42, "triton:local", detail={}),
    ),
    ("list deployments", lambda r: r.list_deployments()),
    ("archive aliased", lambda r: r.archive_version(MODEL, 2)),
    ("archive canary", lambda r: r.archive_version(MODEL, 3)),
    ("archive deployed", lambda r: r.archive_version(MODEL, 4)),
    ("archive free", lambda r: r.archive_version(MODEL, 1)),
    ("archive missing", lambda r: r.archive_version(MODEL, 42)),
    ("archive absent model", lambda r: r.archive_version("absent", 1)),
    ("archive archived", lambda r: r.archive_version(MODEL, 1)),
    (
        "metrics of missing version",
        lambda r: r.set_version_metrics(MODEL, 42, memory_mb=1.0, latency_ms=None),
    ),
    (
        "metrics negative",
        lambda r: r.set_version_metrics(MODEL, 2, memory_mb=-1.0, latency_ms=None),
    ),
    ("record deployment absent model", lambda r: r.record_deployment("absent", 1, "x", detail={})),
    ("record deployment no target", lambda r: r.record_deployment(MODEL, 4, "", detail={})),
    ("alias to archived", lambda r: r.set_alias(MODEL, "production", 1)),
    ("route to archived", lambda r: r.set_route("hooli", MODEL, version=1)),
    ("undeploy", lambda r: r.remove_deployment(MODEL, 4, "triton:local")),
    ("undeploy again", lambda r: r.remove_deployment(MODEL, 4, "triton:local")),
    ("archive undeployed", lambda r: r.archive_version(MODEL, 4)),
    ("make private", lambda r: r.update_model(MODEL, private_to=("initech", "acme"))),
    ("resolve private allowed", lambda r: resolve(r, "acme", MODEL)),
    ("resolve private refused", lambda r: resolve(r, "globex", MODEL)),
    ("route to private refused", lambda r: r.set_route("globex", MODEL, version=2)),
    ("route to private by alias", lambda r: r.set_route("hooli", MODEL, alias="shadow")),
    ("route private allowed", lambda r: r.set_route("acme", MODEL, version=2)),
    ("default alias", lambda r: r.update_model(MODEL, default_alias="shadow", description="v2")),
    ("bad default alias", lambda r: r.update_model(MODEL, default_alias="Shadow")),
    ("bad private tenant", lambda r: r.update_model(MODEL, private_to=("a b",))),
    ("update absent", lambda r: r.update_model("absent", description="x")),
    ("make public", lambda r: r.update_model(MODEL, private_to=())),
    ("resolve by new default", lambda r: resolve(r, "hooli", MODEL)),
    ("delete alias used by route", lambda r: r.delete_alias(MODEL, "staging")),
    ("delete route cas wrong", lambda r: r.delete_route("globex", MODEL, expect_revision=99)),
    ("delete route", lambda r: r.delete_route("globex", MODEL)),
    ("delete route again", lambda r: r.delete_route("globex", MODEL)),
    ("delete alias cas wrong", lambda r: r.delete_alias(MODEL, "staging", expect_version=1)),
    ("delete alias", lambda r: r.delete_alias(MODEL, "staging")),
    ("delete alias again", lambda r: r.delete_alias(MODEL, "staging")),
    ("delete alias absent model", lambda r: r.delete_alias("absent", "staging")),
    ("delete route absent model", lambda r: r.delete_route("acme", "absent")),
    ("delete route cas absent", lambda r: r.delete_route("nobody", MODEL, expect_revision=1)),
    ("delete alias cas absent", lambda r: r.delete_alias(MODEL, "ghost", expect_version=1)),
    ("revision absent", lambda r: r.routing_revision("absent")),
    ("final aliases", lambda r: r.list_aliases(MODEL)),
    ("final routes", lambda r: r.list_routes()),
    ("final versions", lambda r: r.list_versions(MODEL)),
    ("final models", lambda r: r.list_models()),
    ("final revision", lambda r: r.routing_revision(MODEL)),
]


def observe(value: Any) -> Any:
    """A comparable form of an answer: plain data, without timestamps."""
    if hasattr(value, "to_dict"):
        return observe(value.to_dict())
    if is_dataclass(value) and not isinstance(value, type):  # Registered, RoutingState
        return {f.name: observe(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {key: observe(item) for key, item in value.items() if key not in TIMES}
    if isinstance(value, list | tuple):
        return [observe(item) for item in value]
    return value


def run_script(registry: Registry) -> list[tuple[str, Any]]:
    answers: list[tuple[str, Any]] = []
    for _, step in SCRIPT:
        try:
            answers.append(("ok", observe(step(registry))))
        except MlopsError as exc:
            answers.append(("error", (type(exc).__name__, exc.message, exc.hint)))
    return answers


def test_both_backends_answer_alike(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    answers = {
        backend: run_script(make_target(backend, request, tmp_path).open())
        for backend in ("sqlite", "dynamodb")
    }

    errors = {answer[1][0] for answer in answers["sqlite"] if answer[0] == "error"}
    assert {
        "ConflictError",
        "NotFoundError",
        "PrivateModelError",
        "RegistryNameError",
        "UsageError",
    } <= errors
    mismatches = [
        f"{name}:\n  sqlite:   {mine!r}\n  dynamodb: {theirs!r}"
        for (name, _), mine, theirs in zip(
            SCRIPT, answers["sqlite"], answers["dynamodb"], strict=True
        )
        if mine != theirs
    ]
    assert not mismatches, "\n".join(mismatches)
