"""A server whose shared lock table is small (`max_locks_per_transaction` x connections) still
gives every view its definition: pg_get_viewdef locks each view and what it reads until its
batch's transaction ends, and a batch the lock table cannot hold is read in smaller ones."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import psycopg2
import pytest

from pg_metadata.demo.throwaway import ThrowawayServer
from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration
DB = "pgm_lock_table"
VIEWS = 600
# 10 x (20 + 0 prepared) = about 200 lock slots for the whole server
SMALL_LOCK_TABLE = {"max_locks_per_transaction": "10", "max_connections": "20"}


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayServer]:
    with ThrowawayServer("pgm_admin", "admin-secret", settings=SMALL_LOCK_TABLE) as srv:
        dsn = {"host": srv.host, "port": srv.port, "user": "pgm_admin", "password": "admin-secret"}
        conn = psycopg2.connect(**dsn, dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {DB}")
        conn.close()
        conn = psycopg2.connect(**dsn, dbname=DB)
        conn.autocommit = True
        with conn.cursor() as cur:
            for i in range(VIEWS):  # one transaction each: creating them takes locks too
                cur.execute(f"CREATE TABLE t{i} (id int); CREATE VIEW v{i} AS SELECT id FROM t{i}")
        conn.close()
        yield srv


def test_a_batch_the_lock_table_cannot_hold_is_read_in_smaller_ones(server, tmp_path):
    assert "out of shared memory" not in server.log_path.read_text()
    with dg.instance_for_test() as instance:
        run = run_pipeline(server, instance, target=str(tmp_path), include={f"^{DB}$": "*"})
    views = run.entities(DB, "transformed/view")
    assert len(views) == VIEWS
    missing = [v["attributes"]["name"] for v in views if not v["attributes"].get("definition")]
    assert missing == []
    assert all("FROM t" in v["attributes"]["definition"] for v in views)
    # each batch stayed within a quarter of the lock table: the server never ran out of it
    # (for us or for anyone else), not even once before a retry
    assert "out of shared memory" not in server.log_path.read_text()
