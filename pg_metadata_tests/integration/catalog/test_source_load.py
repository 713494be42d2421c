"""Gentle on the source: a fixed handful of statements per database, read-only, identified."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import dagster as dg
import pytest

from pg_metadata_tests.pipeline import PipelineRun, run_pipeline

pytestmark = pytest.mark.integration

MANY_TABLES = """
DO $$ BEGIN
  FOR i IN 1..{n} LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, a text, b numeric(10,2), c date)', i);
    IF i % 10 = 0 THEN
      EXECUTE format('CREATE VIEW v%s AS SELECT id, a FROM t%s', i, i);
    END IF;
  END LOOP;
END $$;
"""


def statements_logged(log_text: str, database: str) -> list[str]:
    """Statements the extractor sent to one database, from the server log."""
    pattern = re.compile(rf"app=pg_metadata db={re.escape(database)} .*?LOG:  statement: (.*)")
    return [m.group(1) for m in pattern.finditer(log_text)]


def run_and_log(cluster, tmp_path, database: str, **kw) -> tuple[PipelineRun, list[str]]:
    """Extract one database from a server; the run and the statements that server logged."""
    if cluster.log_path is None:
        pytest.skip("needs the throwaway cluster's statement log")
    offset = cluster.log_path.stat().st_size
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            cluster, instance, target=str(tmp_path), include=f'{{"^{database}$": "*"}}', **kw
        )
    with open(cluster.log_path, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        sent = statements_logged(f.read(), database)
    return run, sent


@contextlib.contextmanager
def revoked(cluster, database: str, function: str) -> Iterator[None]:
    """EXECUTE on a catalog function taken from PUBLIC in one database, for the block."""
    cluster.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC", dbname=database)
    try:
        yield
    finally:
        cluster.execute(f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC", dbname=database)


def extract_and_log(pg_cluster, tmp_path, tables: int, **postgres_kw) -> list[str]:
    """Extract a fresh database of `tables` tables; the statements it received."""
    name = f"scale_{tables}"
    pg_cluster.create_database(name, MANY_TABLES.format(n=tables))
    try:
        run, sent = run_and_log(pg_cluster, tmp_path, name, postgres_kw=postgres_kw)
        assert run.manifest(name)["entities"]["Table"] == tables
        assert run.manifest(name)["entities"]["Column"] == tables * 4 + (tables // 10) * 2
        return sent
    finally:
        pg_cluster.drop_database(name)


def verbs(statements: list[str]) -> list[str]:
    """The first word of each statement; a plain query starts with its .sql file's comment."""
    return sorted("SELECT" if s.startswith("--") else s.split(" ", 1)[0] for s in statements)


@pytest.mark.parametrize("tables", [10, 300])
def test_statement_count_is_constant(pg_cluster, tmp_path, tables):
    sent = extract_and_log(pg_cluster, tmp_path, tables)
    # Two connections in one snapshot, each first setting its timeouts (a SELECT set_config).
    # Main: BEGIN, pg_export_snapshot(), COPY schemas,
    # tables, procedures, foreign keys, lineage and fingerprint, COMMIT. Helper: BEGIN, SET
    # TRANSACTION SNAPSHOT, COPY columns and foreign keys, COMMIT; then, in a short transaction
    # of their own on the same snapshot (they lock what they read), the view definitions: one
    # query string from BEGIN to COMMIT that keeps its rows on the server, and a SELECT that
    # reads them after the COMMIT. The connections interleave in the log, so compare them as a
    # multiset.
    assert len(sent) == 17, sent
    assert sent.count("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") == 2
    assert sent.count("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;") == 1
    assert verbs(sent) == sorted(
        ["BEGIN"] * 3 + ["SELECT"] * 4 + ["SET"] + ["COPY"] * 7 + ["COMMIT"] * 2
    )
    exported = next(s for s in sent if s.startswith("SET TRANSACTION SNAPSHOT"))
    assert re.fullmatch(r"SET TRANSACTION SNAPSHOT '[0-9A-F-]+'", exported), exported


def test_one_connection_sends_twelve_statements(pg_cluster, tmp_path):
    sent = extract_and_log(pg_cluster, tmp_path, 300, query_connections=1)
    # the session's timeouts, BEGIN (read only, repeatable read), one COPY each for schemas,
    # tables, columns, procedures, foreign keys, lineage and the catalog fingerprint, COMMIT;
    # then, after that transaction, the view definitions' short one (one query string) and
    # the SELECT that reads its rows
    assert len(sent) == 12, sent
    assert sent[0].startswith("-- Our session's timeouts")
    assert sent[1] == "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    assert [s.split(" ", 1)[0] for s in sent[2:10]] == ["COPY"] * 7 + ["COMMIT"]
    assert sent[10] == "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
    assert sent[11].startswith("SELECT d, pg_catalog.set_config('pg_metadata.view_definitions'")


def extract_shop(cluster, tmp_path, **kw) -> tuple[PipelineRun, list[str]]:
    """Extract `shop`; its statements also match what the run reports it sent."""
    run, sent = run_and_log(cluster, tmp_path, "shop", **kw)
    raw_columns = next(
        e.step_materialization_data.materialization.metadata
        for e in run.runs["shop"].get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["default", "raw", "columns"])
    )
    assert raw_columns["statements_per_database"].value == len(sent)
    return run, sent


def test_read_replica_shares_one_snapshot_across_two_connections(pg_cluster, pg_standby, tmp_path):
    """PostgreSQL 15 exports snapshots on a hot standby too, so replicas get both connections."""
    assert pg_standby.query("SELECT pg_is_in_recovery()") == [(True,)]
    primary, _ = extract_shop(pg_cluster, tmp_path / "primary")
    replica, sent = extract_shop(pg_standby, tmp_path / "replica")
    assert len(sent) == 17 and any(s.startswith("SET TRANSACTION SNAPSHOT") for s in sent), sent
    assert replica.manifest("shop")["entities"] == primary.manifest("shop")["entities"]
    assert replica.qualified_names("shop") == primary.qualified_names("shop")


def test_no_snapshot_export_falls_back_to_one_connection(pg_cluster, catalog_db, tmp_path):
    """Where pg_export_snapshot() is not allowed, every query runs on the first connection."""
    reader = {"user": catalog_db.reader_user, "password": catalog_db.reader_password}
    both, _ = extract_shop(pg_cluster, tmp_path / "both", **reader)
    with revoked(pg_cluster, catalog_db.shop, "pg_catalog.pg_export_snapshot()"):
        one, sent = extract_shop(pg_cluster, tmp_path / "one", **reader)
    # both sessions' timeouts, the refused export and its ROLLBACK, then BEGIN, 7 COPY, COMMIT
    # on the same connection, and the view definitions' short transaction and its read
    assert verbs(sent) == sorted(
        ["BEGIN"] * 3 + ["SELECT"] * 4 + ["ROLLBACK"] + ["COPY"] * 7 + ["COMMIT"]
    )
    assert not any(s.startswith("SET TRANSACTION SNAPSHOT") for s in sent)
    assert one.manifest("shop")["entities"] == both.manifest("shop")["entities"]
    assert one.qualified_names("shop") == both.qualified_names("shop")


def test_a_failing_helper_query_fails_the_run_cleanly(pg_cluster, catalog_db, tmp_path):
    """The column query fails on the second connection while the first is busy: the run reports
    that error in one line, publishes nothing and leaves no session behind."""
    reader = {"user": catalog_db.reader_user, "password": catalog_db.reader_password}
    # only columns.sql calls format_type
    format_type = "pg_catalog.format_type(oid, integer)"
    with revoked(pg_cluster, catalog_db.shop, format_type), dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": "*"}',
            raise_on_error=False,
            **reader,
        )
        result = run.runs["shop"]
        left = pg_cluster.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_metadata'"
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("catalog query 'columns' failed on database 'shop'"), message
    assert "permission denied for function format_type" in message
    assert "grant EXECUTE on that function" in message and "\n" not in message
    assert not result.get_asset_materialization_events()
    assert not (tmp_path / "default" / "latest").exists()
    assert left == [(0,)]


def test_session_settings(pg_cluster, catalog_db):
    from pg_metadata.catalog.connection import Connector
    from pg_metadata.catalog.sources import Source

    source = Source(
        "default",
        host=pg_cluster.host,
        port=pg_cluster.port,
        user=pg_cluster.admin_user,
        password=pg_cluster.admin_password,
        statement_timeout_ms=12345,
        lock_timeout_ms=678,
    )
    conn = Connector(source).connect("shop")
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('application_name'), current_setting('transaction_read_only'),"
            " current_setting('transaction_isolation'), current_setting('jit')"
        )
        assert cur.fetchone() == (
            "12345ms",
            "678ms",
            "pg_metadata",
            "on",
            "repeatable read",
            "off",  # compiling catalog queries costs the server CPU and gains nothing
        )
    finally:
        conn.close()


def test_a_stricter_timeout_of_the_role_or_database_is_kept(pg_cluster, catalog_db):
    """A DBA's tighter limit for the extractor (ALTER ROLE/DATABASE ... SET) stays in force;
    a looser one, or none, gets ours."""
    from pg_metadata.catalog.connection import Connector
    from pg_metadata.catalog.sources import Source

    role, db = catalog_db.reader_user, catalog_db.shop
    source = Source(
        "default",
        host=pg_cluster.host,
        port=pg_cluster.port,
        user=role,
        password=catalog_db.reader_password,
        statement_timeout_ms=300_000,
        lock_timeout_ms=5_000,
    )

    def session() -> tuple:
        conn = Connector(source).connect(db)
        try:
            cur = conn.cursor()
            cur.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
                " current_setting('idle_in_transaction_session_timeout')"
            )
            return cur.fetchone()
        finally:
            conn.close()

    try:
        pg_cluster.execute(f"ALTER ROLE \"{role}\" SET statement_timeout = '2s'")
        pg_cluster.execute(f"ALTER DATABASE \"{db}\" SET lock_timeout = '10min'")
        pg_cluster.execute(
            f'ALTER ROLE "{role}" IN DATABASE "{db}" SET idle_in_transaction_session_timeout = 0'
        )
        assert session() == ("2s", "5s", "1min")
        pg_cluster.execute(f"ALTER ROLE \"{role}\" SET statement_timeout = '1h'")
        assert session() == ("5min", "5s", "1min")
    finally:
        pg_cluster.execute(f'ALTER ROLE "{role}" RESET statement_timeout')
        pg_cluster.execute(f'ALTER DATABASE "{db}" RESET lock_timeout')
        pg_cluster.execute(f'ALTER ROLE "{role}" IN DATABASE "{db}" RESET ALL')
