"""SIGINT and SIGTERM stop the whole CLI extraction at once: exit 130/143, nothing published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FIRST, SECOND = "pgm_sig_a", "pgm_sig_b"


@pytest.fixture(scope="module")
def databases(pg_cluster):
    for db in (FIRST, SECOND):
        pg_cluster.drop_database(db)
        pg_cluster.create_database(db, "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t;")
    return FIRST, SECOND


def _waiting_on_lock(pg_cluster) -> bool:
    rows = pg_cluster.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        params=(FIRST,),
    )
    return rows[0][0] > 0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_database_and_publishes_nothing(
    pg_cluster, pg_env, databases, tmp_path, signum, code
):
    # Someone holds the first database's table exclusively: the extraction waits on it (for
    # up to its lock timeout), a moment when a stop must not wait for the server.
    holder = pg_cluster.connect(FIRST)
    holder.autocommit = False  # the lock lasts until the test lets go
    holder.cursor().execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**os.environ, "TMPDIR": str(spool)}
    env.pop("DAGSTER_HOME", None)
    include = '{"^pgm_sig_(a|b)$": "*"}'
    proc = subprocess.Popen(
        [str(BIN / "pg-metadata"), "extract", "--include", include, "--output", "out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _waiting_on_lock(pg_cluster):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
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
