"""DynamoDB-specific behaviour of the ``dynamodb://`` registry, against a real moto server over
HTTP: the table it creates, the item layout, how many requests the hot paths make, and how
DynamoDB's failures (missing table, throttling, unreachable endpoint) reach the caller. The
contract itself is checked for both backends by ``tests/conformance``."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_cli import aws as aws_clients  # `aws` is the moto fixture
from mlops_cli.errors import ConflictError, NotFoundError
from mlops_cli.registry import open_registry
from mlops_cli.registry.base import NewVersion, RegistryUnavailableError
from mlops_cli.registry.dynamodb import DynamoDBRegistry
from tests.servers.moto import free_port

pytestmark = pytest.mark.integration

TABLE = "mlops-registry"
MODEL = "fraud-detector"


def package(label: str) -> NewVersion:
    digest = hashlib.sha256(label.encode()).hexdigest()
    return NewVersion(package_digest=digest, package_uri=f"s3://models/{digest}.tar")


@pytest.fixture
def registry(aws: Any) -> DynamoDBRegistry:
    registry = DynamoDBRegistry.from_uri(f"dynamodb://{TABLE}")
    assert registry.init() is True
    return registry


class Requests:
    """Counts the DynamoDB requests this thread's client sends, by operation."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.client = aws_clients.client("dynamodb")  # the cached client the registry uses too
        self.client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.seen[model.name] += 1

    def take(self) -> dict[str, int]:
        taken, self.seen = dict(self.seen), Counter()
        return taken

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.dynamodb", self._count)


@pytest.fixture
def requests(registry: DynamoDBRegistry) -> Iterator[Requests]:
    counter = Requests()
    yield counter
    counter.close()


def items(prefix: str = "") -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the table (DynamoDB JSON), by (PK, SK)."""
    listing = aws_clients.client("dynamodb").scan(TableName=TABLE, ConsistentRead=True)["Items"]
    found = {(i["PK"]["S"], i["SK"]["S"]): i for i in listing}
    return {key: item for key, item in found.items() if key[1].startswith(prefix)}


# -- the table ---------------------------------------------------------------------------------


def test_init_creates_an_on_demand_encrypted_table_with_pitr_once(
    registry: DynamoDBRegistry,
) -> None:
    assert registry.init() is False  # second call: exists, nothing created
    assert open_registry(f"dynamodb://{TABLE}").init() is False

    client = aws_clients.client("dynamodb")
    table = client.describe_table(TableName=TABLE)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        ("PK", "HASH"),
        ("SK", "RANGE"),
    ]
    indexes = {
        i["IndexName"]: (
            [k["AttributeName"] for k in i["KeySchema"]],
            i["Projection"]["ProjectionType"],
        )
        for i in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "by-package": (["GSI1PK", "GSI1SK"], "ALL"),
        "by-tenant": (["GSI2PK", "GSI2SK"], "ALL"),
    }
    backups = client.describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_init_refuses_a_table_of_another_layout(aws: Any) -> None:
    aws_clients.client("dynamodb").create_table(
        TableName="someone-else",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    with pytest.raises(ConflictError, match="not an mlops registry table"):
        DynamoDBRegistry("someone-else").init()


def test_missing_table_says_to_run_registry_init(aws: Any) -> None:
    registry = DynamoDBRegistry.from_uri("dynamodb://never-created")

    for call in (
        lambda: registry.get_model(MODEL),
        lambda: registry.register_version(MODEL, package("p1")),
        lambda: registry.set_alias(MODEL, "production", 1),
        lambda: registry.list_models(),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert "never-created does not exist" in caught.value.message
        assert caught.value.hint is not None and "mlops registry init" in caught.value.hint


# -- layout and request counts ---------------------------------------------------------------


def test_item_layout_and_dedupe_marker(registry: DynamoDBRegistry) -> None:
    registry.register_version(MODEL, package("p1"), alias="production", model_description="cards")
    registry.register_version(MODEL, package("p1"), new_version=True)
    registry.set_route("acme", MODEL, alias="production")

    pk = f"MODEL#{MODEL}"
    digest = package("p1").package_digest
    assert sorted(sk for item_pk, sk in items() if item_pk == pk) == [
        "ALIAS#production", "META", f"PKG#{digest}", "ROUTE#acme", "VERSION#0000000001", "VERSION#0000000002",
    ]  # fmt: skip
    meta = items("META")[(pk, "META")]
    assert (meta["next_version"]["N"], meta["routing_revision"]["N"]) == ("2", "2")
    assert (meta["GSI2PK"]["S"], meta["GSI2SK"]["S"]) == ("MODELS", pk)
    second = items("VERSION#")[(pk, "VERSION#0000000002")]
    assert (second["GSI1PK"]["S"], second["GSI1SK"]["S"]) == (f"PKG#{digest}", f"{pk}#0000000002")
    assert json.loads(second["lineage"]["S"]) == {}
    # The marker keeps naming the first version, so a plain re-register still answers 1.
    assert items("PKG#")[(pk, f"PKG#{digest}")]["version"]["N"] == "1"
    assert registry.register_version(MODEL, package("p1")).version.version == 1
    route = items("ROUTE#")[(pk, "ROUTE#acme")]
    assert (route["GSI2PK"]["S"], route["GSI2SK"]["S"], route["alias"]["S"]) == (
        "TENANT#acme",
        pk,
        "production",
    )
    assert "version" not in route


def test_register_takes_two_requests_and_a_repeat_two_reads(
    registry: DynamoDBRegistry, requests: Requests
) -> None:
    # one consistent read (counter and package marker), one transaction (counter CAS, version,
    # marker, alias)
    first = registry.register_version(MODEL, package("p1"))
    assert requests.take() == {"TransactGetItems": 1, "TransactWriteItems": 1}

    with_alias = registry.register_version(MODEL, package("p2"), alias="production")
    assert requests.take() == {"TransactGetItems": 1, "TransactWriteItems": 1}

    forced = registry.register_version(MODEL, package("p2"), new_version=True)
    assert requests.take() == {"TransactGetItems": 1, "TransactWriteItems": 1}

    again = registry.register_version(MODEL, package("p1"))
    assert requests.take() == {"TransactGetItems": 1, "GetItem": 1}  # nothing written

    assert [r.version.version for r in (first, with_alias, forced, again)] == [1, 2, 3, 1]
    assert [r.created for r in (first, with_alias, forced, again)] == [True, True, True, False]
    assert again.version == registry.get_version(MODEL, 1)
    assert registry.get_alias(MODEL, "production").version == 2


def test_routing_state_takes_at_most_two_reads(
    registry: DynamoDBRegistry, requests: Requests
) -> None:
    for label in ("p1", "p2", "p3"):
        registry.register_version(MODEL, package(label))
    registry.set_alias(MODEL, "production", 1)
    registry.set_alias(MODEL, "staging", 2)
    registry.set_route("acme", MODEL, alias="staging")
    registry.set_route("globex", MODEL, version=3)
    requests.take()

    default = registry.routing_state("initech", MODEL)  # no route: the default alias
    assert (default.route, default.alias and default.alias.version) == (None, 1)
    assert sum(requests.take().values()) == 1

    by_version = registry.routing_state("globex", MODEL)
    assert (by_version.route and by_version.route.version, by_version.alias) == (3, None)
    assert sum(requests.take().values()) == 1

    by_alias = registry.routing_state("acme", MODEL)
    assert by_alias.alias is not None and (by_alias.alias.alias, by_alias.alias.version) == (
        "staging",
        2,
    )
    assert requests.take() == {"TransactGetItems": 1, "GetItem": 1}

    registry.update_model(MODEL, default_alias="staging")
    requests.take()
    moved_default = registry.routing_state("initech", MODEL)
    assert moved_default.alias is not None and moved_default.alias.alias == "staging"
    assert sum(requests.take().values()) == 2

    assert registry.routing_revision(MODEL) == moved_default.model.routing_revision
    assert requests.take() == {"GetItem": 1}


# -- conflicts ---------------------------------------------------------------------------------


def test_alias_cas_conflict_names_the_current_version_and_changes_nothing(
    registry: DynamoDBRegistry,
) -> None:
    for label in ("p1", "p2", "p3"):
        registry.register_version(MODEL, package(label))
    registry.set_alias(MODEL, "production", 2)
    registry.set_route("acme", MODEL, version=1)
    before = items()

    with pytest.raises(ConflictError, match=r"points at version 2; expected version 1"):
        registry.set_alias(MODEL, "production", 3, expect_version=1)
    with pytest.raises(ConflictError, match=r"points at version 2; expected to be absent"):
        registry.set_alias(MODEL, "production", 3, expect_version="absent")
    with pytest.raises(ConflictError, match=r"does not exist; expected version 2"):
        registry.set_alias(MODEL, "staging", 3, expect_version=2)
    with pytest.raises(ConflictError, match=r"is at revision 1; expected revision 7"):
        registry.set_route("acme", MODEL, version=2, expect_revision=7)
    with pytest.raises(ConflictError, match=r"is at revision 1; expected 7"):
        registry.delete_route("acme", MODEL, expect_revision=7)

    assert items() == before  # not even the routing revision moved


def test_archive_refused_while_aliased(registry: DynamoDBRegistry) -> None:
    registry.register_version(MODEL, package("p1"), alias="production")
    registry.register_version(MODEL, package("p2"))

    with pytest.raises(ConflictError, match="alias @production"):
        registry.archive_version(MODEL, 1)
    assert registry.get_version(MODEL, 1).status == "active"

    registry.set_alias(MODEL, "production", 2, expect_version=1)
    assert registry.archive_version(MODEL, 1).status == "archived"
    assert items("VERSION#")[(f"MODEL#{MODEL}", "VERSION#0000000001")]["status"]["S"] == "archived"
    with pytest.raises(NotFoundError, match="archived"):
        registry.set_alias(MODEL, "production", 1)


# -- failures of the service -------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def test_throttling_after_retries_is_registry_unavailable(
    registry: DynamoDBRegistry, requests: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.awsrequest import AWSResponse

    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _: None)  # keep the backoff short
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "slow down",
        }
    ).encode()

    def throttle(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(
            request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body)
        )

    client = aws_clients.client("dynamodb")
    sent = Counter[str]()
    client.meta.events.register("before-send.dynamodb", lambda **kw: sent.update(["sent"]))
    client.meta.events.register_last("before-send.dynamodb", throttle)

    with pytest.raises(
        RegistryUnavailableError, match=r"kept throttling .* after 6 attempts"
    ) as caught:
        registry.get_model(MODEL)
    assert sent["sent"] == 6  # botocore's standard mode retried 5 times before giving up
    assert caught.value.hint


def test_unreachable_endpoint_is_registry_unavailable(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _: None)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    aws_clients.reset_clients()

    with pytest.raises(RegistryUnavailableError, match="cannot reach"):
        DynamoDBRegistry(TABLE).get_model(MODEL)
