"""Sensors and schedule, evaluated with Dagster's test utilities against the real cluster."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from pg_metadata.definitions import build_definitions
from pg_metadata.orchestration.automation import (
    catalog_changes,
    database_discovery,
    nightly_refresh,
)
from pg_metadata.orchestration.partitions import DATABASE_PARTITIONS_NAME
from pg_metadata_tests.pipeline import make_resources, run_pipeline

pytestmark = pytest.mark.integration
SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, email text NOT NULL);
CREATE VIEW app.active AS SELECT id FROM app.users;
COMMENT ON TABLE app.users IS 'People';
"""


DEFS = build_definitions()


def tick(sensor, instance, resources, cursor=None):
    with (
        dg.build_sensor_context(
            instance=instance, resources=resources, cursor=cursor, definitions=DEFS
        ) as ctx,
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
def resources(pg_cluster, catalog_db, tmp_path):
    postgres, catalog, _ = make_resources(
        pg_cluster, target=str(tmp_path), include='{"^(shop|crm|auto_.*)$": "*"}'
    )
    return {"postgres": postgres, "catalog": catalog}


def test_discovery_adds_and_removes_partitions(pg_cluster, resources):
    pg_cluster.drop_database("auto_new")
    with dg.instance_for_test() as instance:
        first = tick(database_discovery, instance, resources)
        apply_partition_requests(instance, first)
        assert sorted(instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME)) == ["crm", "shop"]
        assert len(first.run_requests) == 1  # one discover_databases run (the sensor's job)
        assert database_discovery.job_name == "discover_databases"
        idle = tick(database_discovery, instance, resources, first.cursor)
        assert not idle.run_requests and not idle.dynamic_partitions_requests
        assert "no change" in idle.skip_message

        pg_cluster.create_database("auto_new", "CREATE TABLE t (a int);")
        grown = tick(database_discovery, instance, resources, idle.cursor)
        apply_partition_requests(instance, grown)
        assert "auto_new" in instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME)
        assert len(grown.run_requests) == 1

        pg_cluster.drop_database("auto_new")
        shrunk = tick(database_discovery, instance, resources, grown.cursor)
        apply_partition_requests(instance, shrunk)
        assert sorted(instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME)) == ["crm", "shop"]


def test_ddl_change_triggers_exactly_one_run(pg_cluster, resources, tmp_path):
    pg_cluster.create_database("auto_app", SCHEMA)
    with dg.instance_for_test() as instance:
        run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include='{"^(crm|auto_app)$": "*"}'
        )
        quiet = tick(catalog_changes, instance, resources)
        assert quiet.run_requests == [] and "no catalog change in 2" in quiet.skip_message

        pg_cluster.execute("ALTER TABLE app.users ADD COLUMN name text", dbname="auto_app")
        changed = tick(catalog_changes, instance, resources, quiet.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["auto_app"]
        assert json.loads(changed.cursor)["auto_app"] != json.loads(quiet.cursor)["auto_app"]

        for ddl in ("DROP VIEW app.active", "COMMENT ON TABLE app.users IS 'Customers'"):
            pg_cluster.execute(ddl, dbname="auto_app")
            again = tick(catalog_changes, instance, resources, changed.cursor)
            assert [r.partition_key for r in again.run_requests] == ["auto_app"], ddl
            assert again.run_requests[0].run_key != changed.run_requests[0].run_key

        # rows and statistics are not schema changes
        pg_cluster.execute("INSERT INTO app.users VALUES (1, 'a'); ANALYZE", dbname="auto_app")
        after_rows = tick(catalog_changes, instance, resources, again.cursor)
        assert after_rows.run_requests[0].run_key == again.run_requests[0].run_key

        # once re-extracted, the database is quiet again
        run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include='{"^(crm|auto_app)$": "*"}'
        )
        settled = tick(catalog_changes, instance, resources, after_rows.cursor)
        assert settled.run_requests == []
    pg_cluster.drop_database("auto_app")


def test_changes_sensor_waits_for_discovery(resources):
    with dg.instance_for_test() as instance:
        data = tick(catalog_changes, instance, resources)
    assert not data.run_requests and "discover_databases" in data.skip_message


def test_nightly_schedule_requests_one_run_per_database():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DATABASE_PARTITIONS_NAME, ["shop", "crm"])
        when = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=DEFS.get_repository_def(),
        )
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            requests = nightly_refresh.evaluate_tick(ctx).run_requests
    assert sorted(r.partition_key for r in requests) == ["crm", "shop"]
    assert {r.run_key for r in requests} == {"shop:2026-11-24T02:00", "crm:2026-11-24T02:00"}
    assert nightly_refresh.cron_schedule == "0 2 * * *"
