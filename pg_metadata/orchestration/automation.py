"""Keeping the catalog fresh: database discovery, change-driven refresh, and a nightly schedule.

- `database_discovery`: lists the server's databases each tick; when the set changes it adds and
  removes partitions and refreshes `raw/databases`.
- `catalog_changes`: one small fingerprint query per database; requests an extraction only for
  databases whose fingerprint differs from the one recorded at their last materialization.
- `nightly_refresh`: one run per database partition (cron `PG_METADATA_SCHEDULE`).
"""

import hashlib
import json
import os

import dagster as dg

from pg_metadata.catalog.datasets import DATABASES, FINGERPRINT, TABLES
from pg_metadata.catalog.reader import query_rows
from pg_metadata.errors import PgMetadataError
from pg_metadata.orchestration.history import latest_materialization
from pg_metadata.orchestration.keys import raw_key
from pg_metadata.orchestration.partitions import (
    DATABASE_PARTITIONS_NAME,
    database_partitions,
    is_valid_partition_key,
)
from pg_metadata.orchestration.resources import CatalogSettings, PostgresResource

DEFAULT_CRON = "0 2 * * *"
DISCOVERY_INTERVAL_S = int(os.environ.get("PG_METADATA_DISCOVERY_INTERVAL", "300"))
CHANGE_INTERVAL_S = int(os.environ.get("PG_METADATA_CHANGE_INTERVAL", "300"))
DEFAULT_STATUS = (
    dg.DefaultSensorStatus.RUNNING
    if os.environ.get("PG_METADATA_AUTOMATION", "").lower() in ("1", "on", "true")
    else dg.DefaultSensorStatus.STOPPED
)


def list_databases(postgres: PostgresResource, catalog: CatalogSettings) -> list[str]:
    """Names of the databases the filters select, from one query on the first database."""
    catalog.validate()
    conn = postgres.connect()
    try:
        rows = query_rows(conn, DATABASES, catalog.catalog_filter().sql_params())
    finally:
        conn.close()
    return [r["database_name"] for r in rows if is_valid_partition_key(r["database_name"])]


def catalog_fingerprint(postgres: PostgresResource, catalog: CatalogSettings, db: str) -> str:
    """The current fingerprint of one database's selected catalog."""
    conn = postgres.connect(db)
    try:
        (row,) = query_rows(conn, FINGERPRINT, catalog.catalog_filter().sql_params())
    finally:
        conn.close()
    return row["fingerprint"]


def recorded_fingerprint(instance: dg.DagsterInstance, db: str) -> str | None:
    """The fingerprint stored with the latest raw/tables materialization of a database."""
    latest = latest_materialization(instance, raw_key(TABLES), db)
    value = latest[0].metadata.get("catalog_fingerprint") if latest else None
    return str(value.value) if value is not None else None


def listed_databases(instance: dg.DagsterInstance) -> set[str] | None:
    """Databases in the latest raw/databases output (None if never materialized)."""
    latest = latest_materialization(instance, raw_key(DATABASES))
    if latest is None:
        return None
    value = latest[0].metadata.get("databases")
    return set(value.value) if value is not None else None


@dg.sensor(
    job_name="discover_databases",
    minimum_interval_seconds=DISCOVERY_INTERVAL_S,
    default_status=DEFAULT_STATUS,
    description="Adds a partition when a database appears and removes it when it is dropped.",
)
def database_discovery(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, catalog: CatalogSettings
) -> dg.SensorResult | dg.SkipReason:
    try:
        names = sorted(list_databases(postgres, catalog))
    except PgMetadataError as exc:
        return dg.SkipReason(f"cannot list databases: {exc}")
    current = set(context.instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME))
    added = [n for n in names if n not in current]
    removed = sorted(current - set(names))
    cursor = hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]
    if not added and not removed:
        context.update_cursor(cursor)
        return dg.SkipReason(f"{len(names)} database(s), no change")
    requests = []
    if added:
        requests.append(database_partitions.build_add_request(added))
    if removed:
        requests.append(database_partitions.build_delete_request(removed))
    return dg.SensorResult(
        # refresh raw/databases so the new databases' Database entities can be built
        run_requests=[dg.RunRequest(run_key=f"databases:{cursor}")],
        dynamic_partitions_requests=requests,
        cursor=cursor,
    )


@dg.sensor(
    job_name="extract_database",
    minimum_interval_seconds=CHANGE_INTERVAL_S,
    default_status=DEFAULT_STATUS,
    description="Re-extracts only the databases whose catalog fingerprint changed since their "
    "last materialization (one small query per database per tick).",
)
def catalog_changes(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, catalog: CatalogSettings
) -> dg.SensorResult | dg.SkipReason:
    listed = listed_databases(context.instance)
    if listed is None:
        return dg.SkipReason("materialize raw/databases first (job discover_databases)")
    partitions = [
        p for p in context.instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME) if p in listed
    ]
    previous = json.loads(context.cursor) if context.cursor else {}
    fingerprints: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    unreachable: list[str] = []
    for db in partitions:
        try:
            current = catalog_fingerprint(postgres, catalog, db)
        except PgMetadataError:
            unreachable.append(db)
            continue
        fingerprints[db] = current
        if current != recorded_fingerprint(context.instance, db):
            requests.append(
                dg.RunRequest(partition_key=db, run_key=f"{db}:{current}", tags={"reason": "ddl"})
            )
    skip = None
    if not requests:
        skip = f"no catalog change in {len(fingerprints)} database(s)"
        if unreachable:
            skip += f"; unreachable: {', '.join(unreachable)}"
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=skip,
        cursor=json.dumps({**previous, **fingerprints}, sort_keys=True),
    )


@dg.schedule(
    job_name="extract_database",
    cron_schedule=os.environ.get("PG_METADATA_SCHEDULE") or DEFAULT_CRON,
    execution_timezone=os.environ.get("PG_METADATA_SCHEDULE_TIMEZONE") or "UTC",
    default_status=dg.DefaultScheduleStatus(DEFAULT_STATUS.value),
    description="Refreshes every database partition (one run per database).",
)
def nightly_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    keys = context.instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME)
    if not keys:
        return dg.SkipReason("no database partitions yet; run discover_databases")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    return [dg.RunRequest(partition_key=k, run_key=f"{k}:{stamp}") for k in keys]
