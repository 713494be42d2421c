"""The production instance (`deploy/dagster.prod.yaml`) on PostgreSQL, end to end.

The instance is loaded exactly as the webserver, daemon and run workers load it: from
``$DAGSTER_HOME/dagster.yaml`` with every storage connection value taken from ``DAGSTER_PG_*``.
The pipeline runs through it, then a second, freshly loaded instance (what another process such
as the webserver sees) and plain SQL on the storage database check what was stored.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import PoolGranularity
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._serdes import serialize_value
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from psycopg2 import sql as pgsql

from pg_metadata_tests.conftest import CatalogDb, PgCluster
from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration

PROD_YAML = Path(__file__).resolve().parents[3] / "deploy" / "dagster.prod.yaml"
STORAGE_DB = "dagster_storage"
# Dagster's storage gets its own role (owner of its database only), as in production.
STORAGE_USER = "dagster_storage_owner"
STORAGE_PASSWORD = "storage-secret-5b1e9"
TABLES_KEY = dg.AssetKey(["default", "raw", "tables"])
DATABASE_PARTITIONS_NAME = "default_databases"
SOURCE_POOL = "pg_metadata/default"


@pytest.fixture
def prod_home(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A DAGSTER_HOME holding the production yaml, pointed at a fresh `dagster_storage`."""
    role = pgsql.Identifier(STORAGE_USER)
    pg_cluster.drop_database(STORAGE_DB)
    pg_cluster.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))
    pg_cluster.execute(
        pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(role), params=(STORAGE_PASSWORD,)
    )
    pg_cluster.create_database(STORAGE_DB)
    pg_cluster.execute(
        pgsql.SQL("ALTER DATABASE {} OWNER TO {}").format(pgsql.Identifier(STORAGE_DB), role)
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROD_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", pg_cluster.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(pg_cluster.port))
    monkeypatch.setenv("DAGSTER_PG_USER", STORAGE_USER)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", STORAGE_PASSWORD)
    monkeypatch.setenv("DAGSTER_PG_DB", STORAGE_DB)
    try:
        yield home
    finally:
        pg_cluster.drop_database(STORAGE_DB)
        pg_cluster.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))


def storage_rows(cluster: PgCluster, query: str | pgsql.Composable, *params: Any) -> list[tuple]:
    """Rows of a query on Dagster's storage database."""
    return cluster.query(query, dbname=STORAGE_DB, params=params or None)


def test_pipeline_on_production_instance(
    pg_cluster: PgCluster, catalog_db: CatalogDb, prod_home: Path, tmp_path: Path
) -> None:
    prod = yaml.safe_load(PROD_YAML.read_text("utf-8"))
    instance = dg.DagsterInstance.from_config(str(prod_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        # the ref handed to run workers names the password variable, never its value
        ref = serialize_value(instance.get_ref())
        assert "DAGSTER_PG_PASSWORD" in ref
        assert STORAGE_PASSWORD not in ref

        result = run_pipeline(
            pg_cluster, instance, target=str(tmp_path / "out"), include='{"^shop$": "*"}'
        )
        assert result.discover.success
        assert list(result.runs) == [catalog_db.shop]
        assert result.runs[catalog_db.shop].success
    finally:
        instance.dispose()
    discover_id = result.discover.run_id
    shop_id = result.runs[catalog_db.shop].run_id

    # Runs, partitions and materializations are rows of the PostgreSQL storage database.
    runs = storage_rows(pg_cluster, "SELECT run_id, pipeline_name, status FROM runs")
    assert sorted(runs) == sorted(
        [
            (discover_id, "default__discover_databases", "SUCCESS"),
            (shop_id, "default__extract_database", "SUCCESS"),
        ]
    )
    partitions = storage_rows(
        pg_cluster,
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
        DATABASE_PARTITIONS_NAME,
    )
    assert partitions == [(catalog_db.shop,)]
    materialized = storage_rows(
        pg_cluster,
        "SELECT run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        " AND asset_key = %s AND partition = %s",
        TABLES_KEY.to_string(),
        catalog_db.shop,
    )
    assert materialized == [(shop_id,)]
    # The storage password is nowhere in what Dagster stored.
    tables = storage_rows(
        pg_cluster, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    assert len(tables) > 10
    for (table,) in tables:
        leaked = storage_rows(
            pg_cluster,
            pgsql.SQL("SELECT count(*) FROM {} AS t WHERE t::text LIKE %s").format(
                pgsql.Identifier(table)
            ),
            f"%{STORAGE_PASSWORD}%",
        )
        assert leaked == [(0,)], table

    # A second process (webserver, daemon) loading the same DAGSTER_HOME sees all of it.
    with dg.DagsterInstance.get() as again:
        assert isinstance(again.run_storage, PostgresRunStorage)
        stored = {r.run_id: r for r in again.get_runs()}
        assert set(stored) == {discover_id, shop_id}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in stored.values())
        assert list(again.get_dynamic_partitions(DATABASE_PARTITIONS_NAME)) == [catalog_db.shop]
        records = again.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=TABLES_KEY, asset_partitions=[catalog_db.shop]),
            limit=10,
        ).records
        assert [r.run_id for r in records] == [shop_id]
        uri = str(records[0].asset_materialization.metadata["uri"].value)
        assert uri.startswith(str(tmp_path / "out"))

        # The run queue and pools are configured from the yaml.
        assert isinstance(again.run_coordinator, QueuedRunCoordinator)
        concurrency = again.get_concurrency_config()
        runs_cfg = prod["concurrency"]["runs"]
        queue = concurrency.run_queue_config
        assert queue is not None
        assert queue.max_concurrent_runs == runs_cfg["max_concurrent_runs"]
        assert list(queue.tag_concurrency_limits) == runs_cfg["tag_concurrency_limits"]
        assert queue.tag_concurrency_limits[0]["key"] == "pg_metadata/source"
        assert (
            queue.max_user_code_failure_retries
            == prod["run_queue"]["max_user_code_failure_retries"]
        )
        default_limit = prod["concurrency"]["pools"]["default_limit"]
        assert concurrency.pool_config.default_pool_limit == default_limit
        assert concurrency.pool_config.pool_granularity == PoolGranularity.OP
        # ... and in effect: the runs claimed slots in our pool, created at the default
        # limit, and released them all when they finished.
        pool = again.event_log_storage.get_concurrency_info(SOURCE_POOL)
        assert pool.slot_count == default_limit
        assert pool.claimed_slots == [] and pool.pending_steps == []
        assert again.run_retries_enabled
        assert again.run_retries_max_retries == prod["run_retries"]["max_retries"]
        assert not again.run_retries_retry_on_asset_or_op_failure
        assert not again.telemetry_enabled
        assert again.run_monitoring_enabled
