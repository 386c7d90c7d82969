"""The promises of :class:`mlops_cli.registry.base.Registry`, checked on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlops_cli.errors import ConflictError, MlopsError, NotFoundError, UsageError
from mlops_cli.registry import Registry
from mlops_cli.registry.base import DEFAULT_ALIAS, NAME_RULES, RegistryNameError
from tests.conformance.conftest import package, register, snapshot

pytestmark = [pytest.mark.integration]

MODEL = "fraud-detector"


# -- setup, models and versions ------------------------------------------------------------


def test_init_is_idempotent(registry: Registry) -> None:
    assert registry.init() is False
    assert registry.list_models() == []


def test_versions_are_numbered_one_two_three(registry: Registry) -> None:
    results = [registry.register_version(MODEL, package(f"p{i}")) for i in (1, 2, 3)]

    assert [r.version.version for r in results] == [1, 2, 3]
    assert all(r.created for r in results)
    second = registry.get_version(MODEL, 2)
    assert second.model == MODEL
    assert second.package_digest == package("p2").package_digest
    assert second.package_uri == package("p2").package_uri
    assert second.status == "active"
    assert second.created_at
    assert registry.get_model(MODEL).latest_version == 3
    assert [v.version for v in registry.list_versions(MODEL)] == [1, 2, 3]


def test_same_package_twice_returns_the_existing_version(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2")

    again = registry.register_version(MODEL, package("p1"))

    assert again.created is False
    assert again.version.version == 1
    assert again.version.package_digest == package("p1").package_digest
    assert registry.get_model(MODEL).latest_version == 2
    assert [v.version for v in registry.list_versions(MODEL)] == [1, 2]


def test_new_version_flag_registers_the_same_package_again(registry: Registry) -> None:
    register(registry, MODEL, "p1")

    forced = registry.register_version(MODEL, package("p1"), new_version=True)

    assert (forced.version.version, forced.created) == (2, True)
    digest = package("p1").package_digest
    assert [(v.model, v.version) for v in registry.find_versions_by_digest(digest)] == [
        (MODEL, 1),
        (MODEL, 2),
    ]


def test_version_metadata_round_trips(registry: Registry) -> None:
    new = package(
        "p1",
        code_digest="c" * 64,
        source={"kind": "huggingface", "repo": "org/model"},
        lineage={"git": "abc123", "user": "ci"},
        tags={"team": "risk", "stage/area": "eu"},
        description="first cut",
    )
    registry.register_version(MODEL, new, model_description="scores card payments")

    got = registry.get_version(MODEL, 1)
    assert got.code_digest == "c" * 64
    assert dict(got.source) == {"kind": "huggingface", "repo": "org/model"}
    assert dict(got.lineage) == {"git": "abc123", "user": "ci"}
    assert dict(got.tags) == {"team": "risk", "stage/area": "eu"}
    assert got.description == "first cut"
    assert (got.memory_mb, got.latency_ms) == (None, None)
    model = registry.get_model(MODEL)
    assert model.description == "scores card payments"
    assert model.default_alias == DEFAULT_ALIAS
    assert model.private_to == ()


def test_register_with_alias_points_it_at_the_new_version(registry: Registry) -> None:
    register(registry, MODEL, "p1")

    registry.register_version(MODEL, package("p2"), alias="production")

    assert registry.get_alias(MODEL, "production").version == 2


def test_set_version_metrics(registry: Registry) -> None:
    register(registry, MODEL, "p1")

    updated = registry.set_version_metrics(MODEL, 1, memory_mb=512.5, latency_ms=12.25)

    assert (updated.memory_mb, updated.latency_ms) == (512.5, 12.25)
    got = registry.get_version(MODEL, 1)
    assert (got.memory_mb, got.latency_ms) == (512.5, 12.25)
    assert got.package_digest == package("p1").package_digest
    with pytest.raises(NotFoundError):
        registry.set_version_metrics(MODEL, 7, memory_mb=1.0, latency_ms=1.0)


def test_unknown_things_raise_not_found(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    lookups: list[Callable[[], Any]] = [
        lambda: registry.get_model("absent-model"),
        lambda: registry.get_version(MODEL, 2),
        lambda: registry.get_version("absent-model", 1),
        lambda: registry.list_versions("absent-model"),
        lambda: registry.get_alias(MODEL, "production"),
        lambda: registry.get_route("acme", MODEL),
        lambda: registry.routing_state("acme", "absent-model"),
        lambda: registry.update_model("absent-model", description="x"),
        lambda: registry.archive_version(MODEL, 2),
    ]
    for lookup in lookups:
        with pytest.raises(NotFoundError) as caught:
            lookup()
        assert isinstance(caught.value, LookupError)


def test_list_models_sorted_by_name(registry: Registry) -> None:
    for name in ("zeta", "alpha", "m.2", "m-1"):
        register(registry, name, f"{name}-p1")

    assert [m.name for m in registry.list_models()] == sorted(["zeta", "alpha", "m.2", "m-1"])


def test_find_versions_by_digest_across_models(registry: Registry) -> None:
    register(registry, "alpha", "shared", "other")
    register(registry, "beta", "x", "shared")

    found = registry.find_versions_by_digest(package("shared").package_digest)

    assert sorted((v.model, v.version) for v in found) == [("alpha", 1), ("beta", 2)]
    assert registry.find_versions_by_digest("0" * 64) == []


# -- aliases ---------------------------------------------------------------------------------


def test_alias_set_get_list_move_delete(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3")

    registry.set_alias(MODEL, "staging", 1)
    registry.set_alias(MODEL, "production", 2)
    assert [(a.alias, a.version) for a in registry.list_aliases(MODEL)] == [
        ("production", 2),
        ("staging", 1),
    ]

    first = registry.get_alias(MODEL, "staging")
    moved = registry.set_alias(MODEL, "staging", 3)
    assert (moved.model, moved.alias, moved.version) == (MODEL, "staging", 3)
    assert moved.revision > first.revision
    assert registry.get_alias(MODEL, "staging") == moved

    registry.delete_alias(MODEL, "staging")
    with pytest.raises(NotFoundError):
        registry.get_alias(MODEL, "staging")
    assert [a.alias for a in registry.list_aliases(MODEL)] == ["production"]
    with pytest.raises(NotFoundError):
        registry.delete_alias(MODEL, "staging")


def test_alias_compare_and_swap(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3")

    created = registry.set_alias(MODEL, "production", 1, expect_version="absent")
    assert created.version == 1

    before = snapshot(registry)
    with pytest.raises(ConflictError):
        registry.set_alias(MODEL, "production", 2, expect_version="absent")
    assert snapshot(registry) == before

    swapped = registry.set_alias(MODEL, "production", 2, expect_version=1)
    assert swapped.version == 2
    assert swapped.revision > created.revision

    before = snapshot(registry)
    with pytest.raises(ConflictError):
        registry.set_alias(MODEL, "production", 3, expect_version=1)  # it is at 2 now
    with pytest.raises(ConflictError):
        registry.set_alias(MODEL, "staging", 3, expect_version=1)  # staging does not exist
    with pytest.raises(ConflictError):
        registry.delete_alias(MODEL, "production", expect_version=1)
    assert snapshot(registry) == before
    assert registry.get_alias(MODEL, "production") == swapped

    registry.delete_alias(MODEL, "production", expect_version=2)
    with pytest.raises(NotFoundError):
        registry.get_alias(MODEL, "production")


def test_alias_to_a_missing_version_writes_nothing(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    before = snapshot(registry)

    with pytest.raises(NotFoundError):
        registry.set_alias(MODEL, "production", 5)
    with pytest.raises(NotFoundError):
        registry.set_alias(MODEL, "staging", 5)
    with pytest.raises(NotFoundError):
        registry.set_alias("absent-model", "production", 1)

    assert snapshot(registry) == before
    with pytest.raises(NotFoundError):
        registry.get_model("absent-model")


def test_alias_to_an_archived_version_is_refused(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2")
    registry.archive_version(MODEL, 1)
    before = snapshot(registry)

    with pytest.raises(MlopsError) as caught:
        registry.set_alias(MODEL, "production", 1)

    assert isinstance(caught.value, NotFoundError | ConflictError)
    assert snapshot(registry) == before


def test_delete_alias_used_by_a_route_is_refused(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "staging", 1)
    registry.set_route("acme", MODEL, alias="staging")
    before = snapshot(registry)

    with pytest.raises(ConflictError):
        registry.delete_alias(MODEL, "staging")

    assert snapshot(registry) == before


# -- routes ----------------------------------------------------------------------------------


def test_routes_set_get_list_delete(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3")
    register(registry, "churn", "c1")
    registry.set_alias(MODEL, "production", 1)

    by_version = registry.set_route("acme", MODEL, version=2)
    by_alias = registry.set_route("globex", MODEL, alias="production")
    canary = registry.set_route("initech", MODEL, version=1, canary_version=3, canary_percent=12.5)
    registry.set_route("acme", "churn", version=1)

    assert (by_version.tenant, by_version.model, by_version.version, by_version.alias) == (
        "acme",
        MODEL,
        2,
        None,
    )
    assert by_version.target == "2"
    assert (by_alias.version, by_alias.alias, by_alias.target) == (
        None,
        "production",
        "@production",
    )
    assert (canary.version, canary.canary_version, canary.canary_percent) == (1, 3, 12.5)
    assert registry.get_route("initech", MODEL) == canary
    assert registry.get_route("globex", MODEL) == by_alias

    def keys(routes: list[Any]) -> list[tuple[str, str]]:
        return [(r.tenant, r.model) for r in routes]

    assert keys(registry.list_routes()) == [
        ("acme", "churn"),
        ("acme", MODEL),
        ("globex", MODEL),
        ("initech", MODEL),
    ]
    assert keys(registry.list_routes(tenant="acme")) == [("acme", "churn"), ("acme", MODEL)]
    assert keys(registry.list_routes(model=MODEL)) == [
        ("acme", MODEL),
        ("globex", MODEL),
        ("initech", MODEL),
    ]
    assert keys(registry.list_routes(tenant="acme", model="churn")) == [("acme", "churn")]
    assert registry.list_routes(tenant="nobody") == []

    registry.delete_route("acme", MODEL)
    with pytest.raises(NotFoundError):
        registry.get_route("acme", MODEL)
    assert keys(registry.list_routes(tenant="acme")) == [("acme", "churn")]
    with pytest.raises(NotFoundError):
        registry.delete_route("acme", MODEL)


def test_route_compare_and_swap(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3")
    first = registry.set_route("acme", MODEL, version=1)

    second = registry.set_route("acme", MODEL, version=2, expect_revision=first.revision)
    assert second.version == 2
    assert second.revision > first.revision

    before = snapshot(registry)
    with pytest.raises(ConflictError):
        registry.set_route("acme", MODEL, version=3, expect_revision=first.revision)
    with pytest.raises(ConflictError):
        registry.delete_route("acme", MODEL, expect_revision=first.revision)
    assert snapshot(registry) == before
    assert registry.get_route("acme", MODEL) == second

    registry.delete_route("acme", MODEL, expect_revision=second.revision)
    assert registry.list_routes() == []


def test_route_to_missing_targets_writes_nothing(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    registry.set_route("acme", MODEL, version=1)
    before = snapshot(registry)

    attempts: list[Callable[[], Any]] = [
        lambda: registry.set_route("globex", "absent-model", version=1),
        lambda: registry.set_route("globex", MODEL, version=9),
        lambda: registry.set_route("globex", MODEL, alias="staging"),
        lambda: registry.set_route("globex", MODEL, version=1, canary_version=9, canary_percent=5),
        lambda: registry.set_route("acme", MODEL, version=9),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            attempt()

    assert snapshot(registry) == before


ROUTE_ARGUMENT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("version and alias", {"version": 1, "alias": "production"}),
    ("neither", {}),
    ("percent over 100", {"version": 1, "canary_version": 1, "canary_percent": 150.0}),
    ("negative percent", {"version": 1, "canary_version": 1, "canary_percent": -1.0}),
    ("canary without percent", {"version": 1, "canary_version": 1}),
    ("percent without canary", {"version": 1, "canary_percent": 10.0}),
]


def refusals(
    registry: Registry, cases: list[tuple[str, Callable[[Registry], Any]]], error: type[Exception]
) -> list[tuple[str, Exception | None]]:
    """Run each case on ``registry``; collect what each raised (None: it was accepted) and fail
    if a case raised something other than ``error`` or changed what the registry shows."""
    before = snapshot(registry)
    raised: list[tuple[str, Exception | None]] = []
    for name, call in cases:
        try:
            call(registry)
        except error as exc:
            raised.append((name, exc))
        else:
            raised.append((name, None))
        assert snapshot(registry) == before, f"{name}: the refused call changed the registry"
    return raised


def test_route_argument_rules(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    cases = [
        (name, lambda r, kw=arguments: r.set_route("acme", MODEL, **kw))
        for name, arguments in ROUTE_ARGUMENT_CASES
    ]

    raised = refusals(registry, cases, UsageError)

    assert [name for name, exc in raised if exc is None] == []


# -- archive -----------------------------------------------------------------------------------


def test_archive_refused_while_in_use_and_allowed_after(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3", "p4", "p5")
    registry.set_alias(MODEL, "production", 1)
    registry.set_route("acme", MODEL, version=2)
    registry.set_route("globex", MODEL, version=5, canary_version=3, canary_percent=5)
    registry.record_deployment(MODEL, 4, "sagemaker:fraud-prod", detail={"endpoint": "fraud-prod"})
    before = snapshot(registry)

    for version in (1, 2, 3, 4):
        with pytest.raises(ConflictError):
            registry.archive_version(MODEL, version)
    assert snapshot(registry) == before

    registry.delete_alias(MODEL, "production")
    registry.delete_route("acme", MODEL)
    registry.set_route("globex", MODEL, version=5)  # canary removed
    registry.remove_deployment(MODEL, 4, "sagemaker:fraud-prod")
    registry.remove_deployment(MODEL, 4, "sagemaker:fraud-prod")  # idempotent

    for version in (1, 2, 3, 4):
        assert registry.archive_version(MODEL, version).status == "archived"
    assert [v.status for v in registry.list_versions(MODEL)] == ["archived"] * 4 + ["active"]
    with pytest.raises(ConflictError):
        registry.archive_version(MODEL, 5)  # still routed
    assert registry.get_version(MODEL, 5).status == "active"


def test_route_to_an_archived_version_is_refused(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2")
    registry.archive_version(MODEL, 1)
    before = snapshot(registry)

    for call in (
        lambda: registry.set_route("acme", MODEL, version=1),
        lambda: registry.set_route("acme", MODEL, version=2, canary_version=1, canary_percent=5),
    ):
        with pytest.raises(MlopsError) as caught:
            call()
        assert isinstance(caught.value, NotFoundError | ConflictError)

    assert snapshot(registry) == before


def test_deployment_records(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2")
    register(registry, "churn", "c1")

    registry.record_deployment(MODEL, 1, "triton:local", detail={"url": "http://a"})
    registry.record_deployment(MODEL, 1, "triton:local", detail={"url": "http://b"})
    registry.record_deployment("churn", 1, "sagemaker:churn", detail={})

    mine = registry.list_deployments(MODEL)
    assert [(d.model, d.version, d.target, d.detail) for d in mine] == [
        (MODEL, 1, "triton:local", {"url": "http://b"})
    ]
    assert {(d.model, d.target) for d in registry.list_deployments()} == {
        (MODEL, "triton:local"),
        ("churn", "sagemaker:churn"),
    }
    registry.remove_deployment(MODEL, 1, "triton:local")
    assert registry.list_deployments(MODEL) == []


# -- names -------------------------------------------------------------------------------------

NAME_CASES: list[tuple[str, str, Callable[[Registry], Any]]] = [
    ("model-uppercase", "model", lambda r: r.register_version("Fraud", package("x"))),
    ("model-space", "model", lambda r: r.register_version("fraud model", package("x"))),
    ("model-leading-dash", "model", lambda r: r.register_version("-fraud", package("x"))),
    ("model-empty", "model", lambda r: r.register_version("", package("x"))),
    ("model-too-long", "model", lambda r: r.register_version("m" * 65, package("x"))),
    ("alias-leading-digit", "alias", lambda r: r.set_alias(MODEL, "1prod", 1)),
    ("alias-uppercase", "alias", lambda r: r.set_alias(MODEL, "Prod", 1)),
    ("alias-too-long", "alias", lambda r: r.set_alias(MODEL, "a" * 33, 1)),
    (
        "alias-on-register",
        "alias",
        lambda r: r.register_version(MODEL, package("x"), alias="pro d"),
    ),
    ("alias-route", "alias", lambda r: r.set_route("acme", MODEL, alias="Prod")),
    ("alias-default", "alias", lambda r: r.update_model(MODEL, default_alias="prod!")),
    ("tenant-space", "tenant", lambda r: r.set_route("acme corp", MODEL, version=1)),
    ("tenant-leading-dot", "tenant", lambda r: r.set_route(".acme", MODEL, version=1)),
    ("tenant-too-long", "tenant", lambda r: r.set_route("t" * 129, MODEL, version=1)),
    (
        "tenant-private-to",
        "tenant",
        lambda r: r.update_model(MODEL, private_to=("acme", "bad/tenant")),
    ),
]


def test_invalid_names_are_refused_with_the_rule(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.set_alias(MODEL, "production", 1)
    kinds = {name: kind for name, kind, _ in NAME_CASES}

    raised = refusals(registry, [(name, call) for name, _, call in NAME_CASES], RegistryNameError)

    assert [name for name, exc in raised if exc is None] == []
    for name, exc in raised:
        assert isinstance(exc, ValueError)
        assert NAME_RULES[kinds[name]] in str(exc), f"{name}: {exc} does not state the rule"


# -- routing revision and model settings -----------------------------------------------------


def test_routing_revision_increases_on_every_change(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2", "p3")
    changes: list[tuple[str, Callable[[], Any]]] = [
        ("set alias", lambda: registry.set_alias(MODEL, "production", 1)),
        ("move alias", lambda: registry.set_alias(MODEL, "production", 2)),
        ("add alias", lambda: registry.set_alias(MODEL, "staging", 3)),
        (
            "register with alias",
            lambda: registry.register_version(MODEL, package("p4"), alias="staging"),
        ),
        ("set route", lambda: registry.set_route("acme", MODEL, version=1)),
        ("change route", lambda: registry.set_route("acme", MODEL, alias="staging")),
        (
            "add canary",
            lambda: registry.set_route(
                "acme", MODEL, alias="staging", canary_version=2, canary_percent=10
            ),
        ),
        ("description", lambda: registry.update_model(MODEL, description="new words")),
        ("private", lambda: registry.update_model(MODEL, private_to=("acme",))),
        ("public", lambda: registry.update_model(MODEL, private_to=())),
        ("default alias", lambda: registry.update_model(MODEL, default_alias="staging")),
        ("delete route", lambda: registry.delete_route("acme", MODEL)),
        ("delete alias", lambda: registry.delete_alias(MODEL, "production")),
    ]
    failures: list[Callable[[], Any]] = [
        lambda: registry.set_alias(MODEL, "staging", 1, expect_version=3),
        lambda: registry.set_alias(MODEL, "staging", 99),
        lambda: registry.set_route("acme", MODEL, version=99),
        lambda: registry.delete_route("nobody", MODEL),
    ]

    previous = registry.routing_revision(MODEL)
    assert previous == registry.get_model(MODEL).routing_revision
    for name, change in changes:
        change()
        current = registry.routing_revision(MODEL)
        assert current > previous, f"{name} did not bump the routing revision"
        assert registry.get_model(MODEL).routing_revision == current
        previous = current

    for failure in failures:
        with pytest.raises(MlopsError):
            failure()
    assert registry.routing_revision(MODEL) == previous


def test_update_model_settings(registry: Registry) -> None:
    register(registry, MODEL, "p1")
    registry.update_model(MODEL, description="scores payments")

    private = registry.update_model(MODEL, private_to=("globex", "acme"))
    assert sorted(private.private_to) == ["acme", "globex"]
    assert private.description == "scores payments"  # untouched settings stay
    assert private.visible_to("acme") and not private.visible_to("initech")
    assert registry.get_model(MODEL) == private

    staged = registry.update_model(MODEL, default_alias="staging")
    assert staged.default_alias == "staging"
    assert sorted(staged.private_to) == ["acme", "globex"]

    public = registry.update_model(MODEL, private_to=())
    assert public.private_to == ()
    assert public.visible_to("initech")
    assert public.default_alias == "staging"
    assert registry.get_model(MODEL).to_dict() == public.to_dict()


def test_archiving_an_archived_version_changes_nothing(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2")
    first = registry.archive_version(MODEL, 1)
    before = snapshot(registry)

    again = registry.archive_version(MODEL, 1)

    assert (again.status, again.version) == ("archived", 1) and again == first
    assert snapshot(registry) == before


def test_refusals_name_the_rule_and_the_next_command(registry: Registry) -> None:
    register(registry, MODEL, "p1", "p2")
    registry.set_alias(MODEL, "production", 1)
    registry.set_route("acme", MODEL, alias="production")
    before = snapshot(registry)

    refusals: list[tuple[Callable[[], Any], type[MlopsError], str, str]] = [
        (lambda: registry.archive_version(MODEL, 1), ConflictError, "alias @production", "undeploy"),
        (lambda: registry.delete_alias(MODEL, "production"), ConflictError, "acme", "mlops route set"),
        (lambda: registry.set_alias(MODEL, "production", 2, expect_version=2), ConflictError,
         "points at version 1", "--expect-version 1"),
        (lambda: registry.set_route("acme", MODEL, version=9), NotFoundError, "no version 9",
         f"mlops models versions {MODEL}"),
        (lambda: registry.record_deployment(MODEL, 1, "", detail={}), UsageError, "target", ""),
    ]  # fmt: skip
    for call, kind, said, hint in refusals:
        with pytest.raises(kind) as caught:
            call()
        assert said in caught.value.message
        assert hint in (caught.value.hint or "")
    assert snapshot(registry) == before
