"""The catalog read locks no user relation for longer than one short transaction: view
definitions (pg_get_viewdef locks the view and what it reads) are read apart from the long
snapshot transaction, with a short lock timeout, and a view whose relations someone holds
exclusively is extracted without its definition instead of failing the database."""

from __future__ import annotations

import dagster as dg
import pytest

from pg_metadata.catalog import reader
from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration
DB = "pgm_locks"
SCRIPT = """
CREATE TABLE base (id int PRIMARY KEY, name text);
CREATE TABLE other (id int);
CREATE VIEW v_base AS SELECT id, name FROM base;
CREATE VIEW v_other AS SELECT id FROM other;
CREATE MATERIALIZED VIEW m_other AS SELECT id FROM other;
"""
USER_LOCKS = """
SELECT c.relname FROM pg_locks AS l
JOIN pg_stat_activity AS a ON a.pid = l.pid
JOIN pg_class AS c ON c.oid = l.relation
WHERE a.application_name LIKE 'pg_metadata%%' AND l.locktype = 'relation'
  AND c.relnamespace = 'public'::regnamespace
"""


@pytest.fixture(scope="module")
def locks_db(pg_cluster):
    pg_cluster.drop_database(DB)
    pg_cluster.create_database(DB, SCRIPT)
    return DB


def test_no_user_relation_stays_locked_while_the_snapshot_is_read(
    pg_cluster, locks_db, tmp_path, monkeypatch
):
    seen: list[list[tuple]] = []
    original = reader.read_view_definitions

    def then_look(*args, **kwargs):
        result = original(*args, **kwargs)
        # the snapshot's transaction is still open here (it waits for this helper)
        seen.append(pg_cluster.query(USER_LOCKS, dbname=DB))
        return result

    monkeypatch.setattr(reader, "read_view_definitions", then_look)
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include={f"^{DB}$": "*"})
    assert seen == [[]], seen  # the definitions' own transaction ended, and with it its locks
    views = {e["attributes"]["name"]: e for e in run.entities(DB, "transformed/view")}
    assert "FROM base" in views["v_base"]["attributes"]["definition"]


@pytest.mark.parametrize("connections", [2, 1])
def test_a_view_whose_table_is_locked_loses_only_its_definition(
    pg_cluster, locks_db, tmp_path, connections
):
    """Also with one connection, where the definitions are read after the snapshot's own
    transaction (before, they were read inside it and the held lock failed the database)."""
    holder = pg_cluster.connect(DB)
    holder.autocommit = False
    holder.cursor().execute("LOCK TABLE base IN ACCESS EXCLUSIVE MODE")
    try:
        with dg.instance_for_test() as instance:
            run = run_pipeline(
                pg_cluster,
                instance,
                target=str(tmp_path),
                include={f"^{DB}$": "*"},
                postgres_kw={"query_connections": connections},
            )
    finally:
        holder.rollback()
        holder.close()
    assert run.runs[DB].success
    views = {e["attributes"]["name"]: e for e in run.entities(DB, "transformed/view")}
    assert "definition" not in views["v_base"]["attributes"]
    assert "FROM other" in views["v_other"]["attributes"]["definition"]
    mvs = run.entities(DB, "transformed/materialised_view")
    assert "FROM other" in mvs[0]["attributes"]["definition"]
    tables = run.file(DB, "raw/tables")
    assert tables["rows"] == 5
    metadata = [
        e.step_output_data.metadata
        for e in run.runs[DB].all_events
        if e.is_successful_output and e.step_output_data.output_name == "tables"
    ]
    assert metadata and metadata[0]["views_without_definition"].value == ["public.v_base"]


def test_a_cancelled_definitions_batch_stops_the_read(pg_cluster, locks_db):
    """A cancel (what a stop signal sends) is not a statement timeout: the read ends with an
    error at once instead of retrying smaller batches."""
    import threading
    import time

    from pg_metadata.catalog.sources import Source
    from pg_metadata.errors import ExtractionError

    holder = pg_cluster.connect(DB)
    holder.autocommit = False
    holder.cursor().execute("LOCK TABLE base IN ACCESS EXCLUSIVE MODE")
    conn = pg_cluster.connect(DB)
    threading.Timer(0.2, conn.cancel).start()  # while the batch waits for the lock
    started = time.monotonic()
    try:
        with pytest.raises(ExtractionError, match="canceling statement due to user request"):
            reader.read_view_definitions(conn, None, Source("x").sql_params(), DB)
    finally:
        holder.rollback()
        holder.close()
        conn.close()
    assert time.monotonic() - started < 0.45  # not the batch's 0.5 s lock timeout, nor more
