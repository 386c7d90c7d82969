"""``dynamodb://table``: the registry in one DynamoDB table.

Item layout (keys are strings; numbers in keys are padded to 10 digits so that they sort)::

    PK            SK                         attributes
    MODEL#<name>  META                       description, default_alias, private_to, tags,
                                             created_at, next_version (the last number handed
                                             out), routing_revision; GSI2 MODELS / MODEL#<name>
    MODEL#<name>  VERSION#<version>          the version's fields, lineage as JSON, status,
                                             deploy_revision; GSI1 PKG#<digest> / MODEL#<name>#<version>
    MODEL#<name>  PKG#<digest>               version: the first one registered from that package
    MODEL#<name>  ALIAS#<alias>              version, revision, updated_at
    MODEL#<name>  ROUTE#<tenant>             version or alias, canary_version, canary_percent,
                                             revision, updated_at; GSI2 TENANT#<tenant> / MODEL#<name>
    MODEL#<name>  DEPLOY#<version>#<target>  version, target, detail as JSON, updated_at
    REGISTRY      REVISION                   revision: the registry revision (absent: 0)
    ROUTERS       ROUTER#<id>                a router's heartbeat: applied_revision, at, address,
                                             started_at, in_flight (zlib JSON, first part),
                                             parts, token (see ``heartbeats``)
    ROUTERS       ROUTER#<id>#PART#<token>#<n>  in_flight: part n of a long heartbeat
    LEASES        LEASE#<name>               holder ("" once released), expires_at, acquired_at,
                                             revision (see ``coordination``)
    PLACEMENTS    FLEET#<fleet>              a fleet's placement: revision, updated_at, document
                                             (zlib JSON, first part), parts, token
    PLACEMENTS    FLEET#<fleet>#PART#<token>#<n>  document: part n of a long placement

Indexes (projection ALL): ``by-package`` (GSI1) answers ``find_versions_by_digest``; ``by-tenant``
(GSI2) answers ``list_routes(tenant=...)`` and, through the ``MODELS`` partition that the META
items share, ``list_models`` without a table scan.

Every write that resolution depends on bumps META's ``routing_revision`` in the same transaction.
Every change (deployment records included) also adds one to the ``REGISTRY`` / ``REVISION``
item in that same transaction, so a refused change moves nothing, a crash cannot separate the
change from its count, and a reader that sees revision R (a consistent GetItem) after the write
returned sees the write. The price: all changes, of any model, update that one item, and
concurrent transactions on one item cancel each other (``TransactionConflict``); they are
retried with jittered backoff (``TRANSACT_TRIES``). Registry changes come from operators and
deploys, a few a second at most, far below what one item sustains; heartbeats, the frequent
writes, never touch it, nor do lease writes (a placement put does). (The alternative, a
separate ADD after each write, never conflicts but can be lost to a crash between the two
requests, leaving routers on stale state until the next change.) Tables made by earlier versions need nothing new: these items appear on first use.
Checks that must read first (archive, delete alias) make their write conditional on the
revisions they read, so a change that slips in between fails the write instead of being missed.
"""

from mlops_cli.registry.dynamodb.registry import DynamoDBRegistry

__all__ = ["DynamoDBRegistry"]
