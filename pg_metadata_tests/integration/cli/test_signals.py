"""SIGINT and SIGTERM stop the whole CLI extraction at once: exit 130/143, nothing published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pg_metadata_tests.processes import end, pause, start_extract, wait_for

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FIRST, SECOND = "pgm_sig_a", "pgm_sig_b"


@pytest.fixture(scope="module")
def databases(pg_cluster):
    for db in (FIRST, SECOND):
        pg_cluster.drop_database(db)
        pg_cluster.create_database(db, "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t;")
    return FIRST, SECOND


def _waiting_on_lock(pg_cluster, database: str) -> bool:
    rows = pg_cluster.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        params=(database,),
    )
    return rows[0][0] > 0


@pytest.mark.parametrize(
    ("signum", "code", "jobs"),
    [
        (signal.SIGINT, 130, "1"),
        (signal.SIGTERM, 143, "1"),
        (signal.SIGTERM, 143, "2"),
        (signal.SIGINT, 130, "2"),
    ],
)
def test_a_signal_stops_every_database_and_publishes_nothing(
    pg_cluster, pg_env, databases, tmp_path, signum, code, jobs
):
    """One by one, the stop ends the first database and never starts the second; side by
    side (--jobs 2, a worker process each), it ends both running databases, whether the
    signal reached the CLI alone (SIGTERM from `kill`) or its whole process group (Ctrl-C)."""
    # Someone holds the databases' table exclusively: the extraction waits on it (for up to
    # its lock timeout), a moment when a stop must not wait for the server.
    held = (FIRST,) if jobs == "1" else (FIRST, SECOND)
    holders = [pg_cluster.connect(db) for db in held]
    for holder in holders:
        holder.autocommit = False  # the lock lasts until the test lets go
        holder.cursor().execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**os.environ, "TMPDIR": str(spool)}
    env.pop("DAGSTER_HOME", None)
    include = '{"^pgm_sig_(a|b)$": "*"}'
    command = ["extract", "--include", include, "--output", "out", "--jobs", jobs]
    proc = subprocess.Popen(
        [str(BIN / "pg-metadata"), *command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a command
    )
    try:
        deadline = time.monotonic() + 60
        while not all(_waiting_on_lock(pg_cluster, db) for db in held):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        sent = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # a terminal's Ctrl-C: the CLI and its workers
        else:
            proc.send_signal(signum)  # the CLI's process only, as `kill` or Kubernetes sends
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        for holder in holders:
            holder.rollback()
            holder.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert took < 3, took  # not the 5 s lock timeout, nor the second database's extraction
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == (
        f"pg-metadata: stopped by {name} after 0 complete database(s); the unfinished ones' "
        "latest/ is unchanged"
    )
    assert "Traceback" not in err
    latest = tmp_path / "out" / "default" / "latest"
    assert not latest.exists() or not any(latest.iterdir())  # neither database was published
    assert not list((tmp_path / "out").rglob("*.part"))
    assert not list(spool.rglob("*.csv"))  # the catalog spool is gone
    sessions = pg_cluster.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
        params=([FIRST, SECOND],),
    )
    assert sessions == [(0,)]


PAUSED = "pgm_paused"
MANY_VIEWS = """
CREATE TABLE base (id int PRIMARY KEY, name text, price numeric);
DO $$ BEGIN
  FOR i IN 1..4000 LOOP
    EXECUTE format('CREATE VIEW v%s AS SELECT b.id, upper(b.name) AS name, b.price * %s AS p '
                   'FROM base AS b WHERE b.id > %s AND b.name LIKE ''x%%''', i, i, i);
  END LOOP;
END $$;
"""
OUR_LOCKS_ON_BASE = """
SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE a.application_name LIKE 'pg_metadata%%' AND l.relation = 'base'::regclass
"""


def test_a_paused_extraction_cannot_make_ddl_wait(pg_cluster, pg_env, tmp_path):
    """The extractor is stopped (SIGSTOP) while it holds a lock on a table under the views,
    reading their definitions: an ALTER TABLE on that table still gets through within the
    definitions' 0.5 s statement timeout, not after the pause (nor an idle timeout)."""
    pg_cluster.create_database(PAUSED, MANY_VIEWS)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    watcher = pg_cluster.connect(PAUSED)
    proc = start_extract(PAUSED, env, tmp_path, "--quiet")
    try:
        with watcher.cursor() as cur:
            wait_for(proc, cur, OUR_LOCKS_ON_BASE)
            pause(proc)
            started = time.monotonic()
            cur.execute("SET lock_timeout = '30s'")
            cur.execute("ALTER TABLE base ADD COLUMN added int")
            waited = time.monotonic() - started
            cur.execute(OUR_LOCKS_ON_BASE)
            held_while_paused = cur.fetchone()[0]
        pause(proc, False)
        _, err = proc.communicate(timeout=120)
    finally:
        watcher.close()
        end(proc)
        pg_cluster.drop_database(PAUSED)
    assert waited < 1.0, waited
    assert held_while_paused == 0
    assert proc.returncode == 0, err
    assert (tmp_path / "out" / "default" / "latest" / f"{PAUSED}.json").exists()
