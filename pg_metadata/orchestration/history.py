"""What Dagster recorded: the materialization of an asset (or of one of its partitions) that a
run should use, its own when it made one, else the latest."""

from __future__ import annotations

import dagster as dg

Key = tuple[dg.AssetKey, str | None]


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> tuple[dg.AssetMaterialization, str] | None:
    """The latest materialization and the id of the run that made it, or None."""
    if partition is None:
        event = instance.get_latest_materialization_event(key)
    else:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        event = records[0].event_log_entry if records else None
    if event is None or event.asset_materialization is None:
        return None
    return event.asset_materialization, event.run_id


def run_materializations(
    instance: dg.DagsterInstance, run_id: str
) -> dict[Key, dg.AssetMaterialization]:
    """Every materialization one run made, by (asset key, partition); the last one wins."""
    found: dict[Key, dg.AssetMaterialization] = {}
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id, cursor=cursor, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        for record in page.records:
            m = record.event_log_entry.asset_materialization
            if m is not None:
                found[(m.asset_key, m.partition)] = m
        if not page.has_more:
            return found
        cursor = page.cursor


def materialization_for_run(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None, run_id: str | None
) -> tuple[dg.AssetMaterialization, str] | None:
    """The run's own materialization of the asset; when it made none (a run of a subset of
    the assets), the latest one, whose run id the caller records."""
    if run_id is not None:
        own = run_materializations(instance, run_id).get((key, partition))
        if own is not None:
            return own, run_id
    return latest_materialization(instance, key, partition)
