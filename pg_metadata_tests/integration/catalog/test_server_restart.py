"""A server that crashes and restarts while a catalog COPY is streaming: the run says the
connection was lost during that query, retries, and publishes a complete catalog."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from pg_metadata.demo.throwaway import ThrowawayServer
from pg_metadata_tests.processes import end, pause, start_extract, wait_for

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
DB = "wide"
TABLES, COLUMNS = 500, 200  # 100,000 columns: a columns COPY of some 10 MB
WIDE = f"""
DO $$ BEGIN
  FOR i IN 1..{TABLES} LOOP
    EXECUTE format('CREATE TABLE t%s (%s)', i,
      (SELECT string_agg(format('c%s int', j), ', ') FROM generate_series(1, {COLUMNS}) AS j));
  END LOOP;
END $$;
"""
COPYING = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name LIKE 'pg_metadata%%' AND datname = 'wide' AND state = 'active'
  AND query LIKE 'COPY%%'
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayServer]:
    with ThrowawayServer("pgm_admin", "admin-secret") as srv:
        conn = psycopg2.connect(**dsn(srv, "postgres"))
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {DB}")
        conn.close()
        conn = psycopg2.connect(**dsn(srv, DB))
        conn.autocommit = True
        conn.cursor().execute(WIDE)
        conn.close()
        yield srv


def dsn(srv: ThrowawayServer, dbname: str) -> dict:
    return {
        "host": srv.host,
        "port": srv.port,
        "user": srv.admin_user,
        "password": srv.admin_password,
        "dbname": dbname,
    }


def test_a_crash_mid_copy_is_retried_and_said_in_words(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DAGSTER_HOME"))}
    env.update(
        PGHOST=server.host,
        PGPORT=str(server.port),
        PGUSER=server.admin_user,
        PGPASSWORD=server.admin_password,
        PGDATABASE="postgres",
        PGSSLMODE="disable",
    )
    proc = start_extract(DB, env, tmp_path, "--retries", "3")
    try:
        watcher = psycopg2.connect(**dsn(server, "postgres"))
        watcher.autocommit = True
        with watcher.cursor() as cur:
            wait_for(proc, cur, COPYING)
        watcher.close()
        # the extractor stops reading mid-COPY (the server blocks on the full socket), and the
        # server crashes under it: when it reads on, the stream ends without CommandComplete
        pause(proc)
        server.restart("immediate")
        pause(proc, False)
        _, err = proc.communicate(timeout=180)
    finally:
        end(proc)
    assert proc.returncode == 0, err
    retried = [line for line in err.splitlines() if "retrying in" in line]
    assert len(retried) == 1, err
    assert re.search(
        r"retrying in 2 s \(1/3\): the server closed the connection during the [\w ]+ query on "
        r"database 'wide' \(.+\); the server restarted or the network dropped",
        retried[0],
    ), retried
    manifest = json.loads((tmp_path / "out" / "default" / "latest" / f"{DB}.json").read_text())
    assert manifest["entities"]["Table"] == TABLES
    assert manifest["entities"]["Column"] == TABLES * COLUMNS
