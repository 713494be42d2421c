"""One Dagster dynamic partition per database of a source, and the source's pool limit."""

from __future__ import annotations

import dagster as dg

from pg_metadata.orchestration.plan import SourcePlan

# Dagster rejects partition keys containing these.
_INVALID = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


def is_valid_partition_key(name: str) -> bool:
    """Whether a database name can be used as a partition key."""
    return bool(name) and not any(bad in name for bad in _INVALID)


def sync_database_partitions(
    instance: dg.DagsterInstance, plan: SourcePlan, names: list[str]
) -> tuple[list[str], list[str]]:
    """Make the source's partitions exactly `names`; returns (added, removed)."""
    partitions_name = plan.partitions.name
    existing = set(instance.get_dynamic_partitions(partitions_name))
    wanted = [n for n in names if is_valid_partition_key(n)]
    added = [n for n in wanted if n not in existing]
    removed = sorted(existing - set(wanted))
    if added:
        instance.add_dynamic_partitions(partitions_name, added)
    for name in removed:
        instance.delete_dynamic_partition(partitions_name, name)
    return added, removed


def ensure_pool_limit(instance: dg.DagsterInstance, plan: SourcePlan) -> int | None:
    """Set the source's pool to the slots its `max_connections` allows (None: no cap set).

    Every step that connects to the source claims a slot of this pool, so the cap holds across
    runs, executors and workers, e.g. during a fleet-wide backfill.
    """
    slots = plan.source.pool_slots
    storage = instance.event_log_storage
    if slots is None or not storage.supports_global_concurrency_limits:
        return None
    info = storage.get_concurrency_info(plan.pool)
    if info.slot_count != slots:
        storage.set_concurrency_slots(plan.pool, slots)
    return slots
