"""Keeping a source's catalog fresh: database discovery, change-driven refresh, a schedule.

Per source, each with its own cursor and interval:
- `<source>__database_discovery`: lists the server's databases each tick; when the set changes
  it adds and removes the source's partitions and refreshes its `raw/databases`.
- `<source>__catalog_changes`: one small fingerprint query per database; requests an
  extraction only for databases whose fingerprint differs from the one recorded at their last
  materialization.
- `<source>__nightly_refresh`: one run per database partition (the source's `schedule` cron).
"""

import hashlib
import json
import os

import dagster as dg

from pg_metadata.catalog.datasets import DATABASES, FINGERPRINT, TABLES
from pg_metadata.catalog.preflight import check_patterns
from pg_metadata.catalog.reader import query_rows
from pg_metadata.errors import PgMetadataError
from pg_metadata.orchestration.history import latest_materialization
from pg_metadata.orchestration.partitions import is_valid_partition_key
from pg_metadata.orchestration.plan import SourcePlan


def default_status() -> dg.DefaultSensorStatus:
    """Sensors and schedules start stopped unless PG_METADATA_AUTOMATION=on."""
    on = os.environ.get("PG_METADATA_AUTOMATION", "").lower() in ("1", "on", "true")
    return dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED


def list_databases(plan: SourcePlan) -> list[str]:
    """Names of the databases the filters select, from one query on the first database."""
    conn = plan.connector.connect()
    try:
        check_patterns(conn, plan.source.catalog_filter)
        rows = query_rows(conn, DATABASES, plan.source.sql_params())
    finally:
        conn.close()
    return [r["database_name"] for r in rows if is_valid_partition_key(r["database_name"])]


def catalog_fingerprint(plan: SourcePlan, db: str) -> str:
    """The current fingerprint of one database's selected catalog."""
    conn = plan.connector.connect(db)
    try:
        (row,) = query_rows(conn, FINGERPRINT, plan.source.sql_params())
    finally:
        conn.close()
    return row["fingerprint"]


def recorded_fingerprint(instance: dg.DagsterInstance, plan: SourcePlan, db: str) -> str | None:
    """The fingerprint stored with the latest raw/tables materialization of a database."""
    latest = latest_materialization(instance, plan.raw_key(TABLES), db)
    value = latest[0].metadata.get("catalog_fingerprint") if latest else None
    return str(value.value) if value is not None else None


def listed_databases(instance: dg.DagsterInstance, plan: SourcePlan) -> set[str] | None:
    """Databases in the latest raw/databases output (None if never materialized)."""
    latest = latest_materialization(instance, plan.raw_key(DATABASES))
    if latest is None:
        return None
    value = latest[0].metadata.get("databases")
    return set(value.value) if value is not None else None


def discovery_sensor(plan: SourcePlan) -> dg.SensorDefinition:
    """Adds a partition when a database appears and removes it when it is dropped."""

    @dg.sensor(
        name=f"{plan.name}__database_discovery",
        job_name=plan.discover_job_name,
        minimum_interval_seconds=plan.source.discovery_interval_s,
        default_status=default_status(),
        description=f"Adds a partition of source {plan.name!r} when a database appears and "
        "removes it when it is dropped.",
    )
    def _discovery(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            names = sorted(list_databases(plan))
        except PgMetadataError as exc:
            return dg.SkipReason(f"cannot list databases of source {plan.name!r}: {exc}")
        current = set(context.instance.get_dynamic_partitions(plan.partitions.name))
        added = [n for n in names if n not in current]
        removed = sorted(current - set(names))
        cursor = hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]
        if not added and not removed:
            context.update_cursor(cursor)
            return dg.SkipReason(f"{len(names)} database(s), no change")
        requests = []
        if added:
            requests.append(plan.partitions.build_add_request(added))
        if removed:
            requests.append(plan.partitions.build_delete_request(removed))
        return dg.SensorResult(
            # refresh raw/databases so the new databases' Database entities can be built
            run_requests=[dg.RunRequest(run_key=f"databases:{cursor}")],
            dynamic_partitions_requests=requests,
            cursor=cursor,
        )

    return _discovery


def change_sensor(plan: SourcePlan) -> dg.SensorDefinition:
    """Re-extracts only the databases whose catalog fingerprint changed."""

    @dg.sensor(
        name=f"{plan.name}__catalog_changes",
        job_name=plan.extract_job_name,
        minimum_interval_seconds=plan.source.change_interval_s,
        default_status=default_status(),
        description=f"Re-extracts only the databases of source {plan.name!r} whose catalog "
        "fingerprint changed since their last materialization (one small query per database "
        "per tick).",
    )
    def _changes(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        listed = listed_databases(context.instance, plan)
        if listed is None:
            return dg.SkipReason(
                f"materialize {plan.raw_key(DATABASES).to_user_string()} first "
                f"(job {plan.discover_job_name})"
            )
        partitions = [
            p for p in context.instance.get_dynamic_partitions(plan.partitions.name) if p in listed
        ]
        previous = json.loads(context.cursor) if context.cursor else {}
        fingerprints: dict[str, str] = {}
        requests: list[dg.RunRequest] = []
        unreachable: list[str] = []
        for db in partitions:
            try:
                current = catalog_fingerprint(plan, db)
            except PgMetadataError:
                unreachable.append(db)
                continue
            fingerprints[db] = current
            if current != recorded_fingerprint(context.instance, plan, db):
                requests.append(
                    dg.RunRequest(
                        partition_key=db,
                        run_key=f"{db}:{current}",
                        tags={"reason": "ddl", **plan.database_tags(db)},
                    )
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

    return _changes


def refresh_schedule(plan: SourcePlan) -> dg.ScheduleDefinition:
    """One run per database partition of the source, on the source's cron."""

    @dg.schedule(
        name=f"{plan.name}__nightly_refresh",
        job_name=plan.extract_job_name,
        cron_schedule=plan.source.schedule,
        execution_timezone=plan.source.schedule_timezone,
        default_status=dg.DefaultScheduleStatus(default_status().value),
        description=f"Refreshes every database partition of source {plan.name!r} (one run per "
        "database).",
    )
    def _refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        keys = context.instance.get_dynamic_partitions(plan.partitions.name)
        if not keys:
            return dg.SkipReason(f"no database partitions yet; run {plan.discover_job_name}")
        stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        return [
            dg.RunRequest(partition_key=k, run_key=f"{k}:{stamp}", tags=plan.database_tags(k))
            for k in keys
        ]

    return _refresh
