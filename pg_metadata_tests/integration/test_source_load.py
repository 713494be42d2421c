"""Gentle on the source: a fixed handful of statements per database, read-only, identified."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from pg_metadata_tests.pipeline import run_pipeline

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


@pytest.mark.parametrize("tables", [10, 300])
def test_statement_count_is_constant(pg_cluster, tmp_path, tables):
    if pg_cluster.log_path is None:
        pytest.skip("needs the throwaway cluster's statement log")
    name = f"scale_{tables}"
    pg_cluster.create_database(name, MANY_TABLES.format(n=tables))
    offset = pg_cluster.log_path.stat().st_size
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include=f'{{"^{name}$": "*"}}'
        )
    assert run.manifest(name)["entities"]["Table"] == tables
    with open(pg_cluster.log_path, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        sent = statements_logged(f.read(), name)
    # BEGIN (read only, repeatable read), one COPY each for schemas, tables, columns and the
    # catalog fingerprint, COMMIT
    assert len(sent) == 6, sent
    assert sent[0] == "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    assert [s.split(" ", 1)[0] for s in sent[1:]] == ["COPY"] * 4 + ["COMMIT"]
    pg_cluster.drop_database(name)


def test_session_settings(pg_cluster, catalog_db):
    from pg_metadata.resources import PostgresResource

    pg = PostgresResource(
        host=pg_cluster.host,
        port=pg_cluster.port,
        user=pg_cluster.admin_user,
        password=pg_cluster.admin_password,
        statement_timeout_ms=12345,
        lock_timeout_ms=678,
    )
    conn = pg.connect("shop")
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('application_name'), current_setting('transaction_read_only'),"
            " current_setting('transaction_isolation')"
        )
        assert cur.fetchone() == ("12345ms", "678ms", "pg_metadata", "on", "repeatable read")
    finally:
        conn.close()
