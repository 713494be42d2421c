"""Sensors and schedule, evaluated with Dagster's test utilities against the real cluster."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from pg_metadata.catalog.sources import Source
from pg_metadata.orchestration.definitions import build_definitions
from pg_metadata_tests.pipeline import make_source, run_pipeline

pytestmark = pytest.mark.integration
SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, email text NOT NULL);
CREATE VIEW app.active AS SELECT id FROM app.users;
COMMENT ON TABLE app.users IS 'People';
"""

PARTITIONS = "default_databases"


def tick(name: str, instance, source: Source, cursor=None):
    """One tick of the source's sensor `<source>__<name>`."""
    defs = build_definitions([source])
    sensor = defs.resolve_sensor_def(f"{source.name}__{name}")
    with (
        dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as ctx,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        return sensor.evaluate_tick(ctx)


def apply_partition_requests(instance, data) -> None:
    """What the daemon does with a tick's dynamic partition requests."""
    for req in data.dynamic_partitions_requests:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)


@pytest.fixture
def source(pg_cluster, catalog_db):
    return make_source(pg_cluster, include='{"^(shop|crm|auto_.*)$": "*"}')


def test_discovery_adds_and_removes_partitions(pg_cluster, source):
    pg_cluster.drop_database("auto_new")
    with dg.instance_for_test() as instance:
        first = tick("database_discovery", instance, source)
        apply_partition_requests(instance, first)
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["crm", "shop"]
        assert len(first.run_requests) == 1  # one discover_databases run (the sensor's job)
        sensor = build_definitions([source]).resolve_sensor_def("default__database_discovery")
        assert sensor.job_name == "default__discover_databases"
        idle = tick("database_discovery", instance, source, first.cursor)
        assert not idle.run_requests and not idle.dynamic_partitions_requests
        assert "no change" in idle.skip_message

        pg_cluster.create_database("auto_new", "CREATE TABLE t (a int);")
        grown = tick("database_discovery", instance, source, idle.cursor)
        apply_partition_requests(instance, grown)
        assert "auto_new" in instance.get_dynamic_partitions(PARTITIONS)
        assert len(grown.run_requests) == 1

        pg_cluster.drop_database("auto_new")
        shrunk = tick("database_discovery", instance, source, grown.cursor)
        apply_partition_requests(instance, shrunk)
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["crm", "shop"]


def test_ddl_change_triggers_exactly_one_run(pg_cluster, source, tmp_path):
    pg_cluster.create_database("auto_app", SCHEMA)
    with dg.instance_for_test() as instance:
        run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include='{"^(crm|auto_app)$": "*"}'
        )
        quiet = tick("catalog_changes", instance, source)
        assert quiet.run_requests == [] and "no catalog change in 2" in quiet.skip_message

        pg_cluster.execute("ALTER TABLE app.users ADD COLUMN name text", dbname="auto_app")
        changed = tick("catalog_changes", instance, source, quiet.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["auto_app"]
        assert json.loads(changed.cursor)["auto_app"] != json.loads(quiet.cursor)["auto_app"]

        for ddl in ("DROP VIEW app.active", "COMMENT ON TABLE app.users IS 'Customers'"):
            pg_cluster.execute(ddl, dbname="auto_app")
            again = tick("catalog_changes", instance, source, changed.cursor)
            assert [r.partition_key for r in again.run_requests] == ["auto_app"], ddl
            assert again.run_requests[0].run_key != changed.run_requests[0].run_key

        # rows and statistics are not schema changes
        pg_cluster.execute("INSERT INTO app.users VALUES (1, 'a'); ANALYZE", dbname="auto_app")
        after_rows = tick("catalog_changes", instance, source, again.cursor)
        assert after_rows.run_requests[0].run_key == again.run_requests[0].run_key

        # once re-extracted, the database is quiet again
        run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include='{"^(crm|auto_app)$": "*"}'
        )
        settled = tick("catalog_changes", instance, source, after_rows.cursor)
        assert settled.run_requests == []
    pg_cluster.drop_database("auto_app")


def test_changes_sensor_waits_for_discovery(source):
    with dg.instance_for_test() as instance:
        data = tick("catalog_changes", instance, source)
    assert not data.run_requests and "discover_databases" in data.skip_message


def test_nightly_schedule_requests_one_run_per_database(pg_cluster):
    defs = build_definitions([make_source(pg_cluster)])
    nightly_refresh = defs.resolve_schedule_def("default__nightly_refresh")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS, ["shop", "crm"])
        when = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
        )
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            requests = nightly_refresh.evaluate_tick(ctx).run_requests
    assert sorted(r.partition_key for r in requests) == ["crm", "shop"]
    assert {r.run_key for r in requests} == {"shop:2026-11-24T02:00", "crm:2026-11-24T02:00"}
    assert nightly_refresh.cron_schedule == "0 2 * * *"
