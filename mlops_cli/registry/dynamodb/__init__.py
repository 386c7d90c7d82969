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

Indexes (projection ALL): ``by-package`` (GSI1) answers ``find_versions_by_digest``; ``by-tenant``
(GSI2) answers ``list_routes(tenant=...)`` and, through the ``MODELS`` partition that the META
items share, ``list_models`` without a table scan.

Every write that resolution depends on bumps META's ``routing_revision`` in the same transaction.
Checks that must read first (archive, delete alias) make their write conditional on the
revisions they read, so a change that slips in between fails the write instead of being missed.
"""

from mlops_cli.registry.dynamodb.registry import DynamoDBRegistry

__all__ = ["DynamoDBRegistry"]
