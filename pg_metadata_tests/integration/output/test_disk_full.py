"""A full disk fails the run in one line and leaves the space as it was: the run's partial
files are removed, so the next run has room."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FULL, SMALL = "pgm_disk_full", "pgm_disk_small"
TABLES = """
DO $$ BEGIN
  FOR i IN 1..{n} LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, a text, b numeric(10,2), c date)', i);
  END LOOP;
END $$;
"""


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 1.5 MB tmpfs (root only): the 300-table catalog's output (2.1 MB) does not fit."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def used(mount: Path) -> int:
    stat = os.statvfs(mount)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def test_a_full_disk_leaves_room_for_the_next_run(pg_cluster, pg_env, small_disk, tmp_path):
    pg_cluster.create_database(FULL, TABLES.format(n=300))
    pg_cluster.create_database(SMALL, TABLES.format(n=3))
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    out = small_disk / "catalog"

    def extract(database: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(BIN / "pg-metadata"),
                "extract",
                "--include",
                f'{{"^{database}$": "*"}}',
                "--output",
                str(out),
                "--quiet",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        before = used(small_disk)
        failed = extract(FULL)
        after = used(small_disk)
        files_left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        ok = extract(SMALL)
    finally:
        pg_cluster.drop_database(FULL)
        pg_cluster.drop_database(SMALL)
    assert failed.returncode == 1, failed.stderr
    line = failed.stderr.strip().splitlines()[-1]
    assert "No space left on device" in line and str(out) in line, line
    assert "removed this run's" in line, line
    assert "dagster._core" not in failed.stderr and "Traceback" not in failed.stderr
    # no partial run, no staging part; the discovery run (complete) keeps its database list
    assert [f for f in files_left if not f.endswith("/raw/databases.parquet")] == [], files_left
    assert after - before < 64 * 1024, (before, after)  # folders only
    assert ok.returncode == 0, ok.stderr
    assert (out / "default" / "latest" / f"{SMALL}.json").exists()
    shutil.rmtree(out, ignore_errors=True)
