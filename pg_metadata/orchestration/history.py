"""What Dagster recorded: the latest materialization of an asset (or of one of its partitions)."""

from __future__ import annotations

import dagster as dg


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
