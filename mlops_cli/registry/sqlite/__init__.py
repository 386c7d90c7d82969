"""``sqlite:///path`` registry: the embedded default.

One database file in WAL mode. Every write runs in a ``BEGIN IMMEDIATE`` transaction, so
concurrent processes serialise on the database's write lock (waiting up to ``busy_timeout``) and
each transaction sees the state it changes: the version counter is incremented and the version
inserted in one transaction, and a change's checks (:mod:`mlops_cli.registry.rules`) run on rows
read under the same lock as its writes.

Reads never create the database: a registry that does not exist yet reads as empty (so that
``mlops status`` leaves no ``.mlops/registry.db`` behind); only a write creates it.

The modules: :mod:`~mlops_cli.registry.sqlite.database` opens the file and runs transactions,
:mod:`~mlops_cli.registry.sqlite.rows` turns rows into records, and
:mod:`~mlops_cli.registry.sqlite.registry` implements the registry's storage port in SQL.
"""

from mlops_cli.registry.sqlite.registry import SQLiteRegistry

__all__ = ["SQLiteRegistry"]
