"""One Dagster dynamic partition per source database."""

from __future__ import annotations

import dagster as dg

DATABASE_PARTITIONS_NAME = "pg_database"
database_partitions = dg.DynamicPartitionsDefinition(name=DATABASE_PARTITIONS_NAME)

# Dagster rejects partition keys containing these.
_INVALID = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


def is_valid_partition_key(name: str) -> bool:
    """Whether a database name can be used as a partition key."""
    return bool(name) and not any(bad in name for bad in _INVALID)


def sync_database_partitions(
    instance: dg.DagsterInstance, names: list[str]
) -> tuple[list[str], list[str]]:
    """Make the partitions exactly `names`; returns (added, removed)."""
    existing = set(instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME))
    wanted = [n for n in names if is_valid_partition_key(n)]
    added = [n for n in wanted if n not in existing]
    removed = sorted(existing - set(wanted))
    if added:
        instance.add_dynamic_partitions(DATABASE_PARTITIONS_NAME, added)
    for name in removed:
        instance.delete_dynamic_partition(DATABASE_PARTITIONS_NAME, name)
    return added, removed
