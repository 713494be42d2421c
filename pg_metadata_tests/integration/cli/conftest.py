"""Fixtures of the CLI tests: the environment a user of the reader role would have."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def pg_metadata(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed `pg-metadata` command, as a user would."""
    return subprocess.run(
        [str(BIN / "pg-metadata"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def reader_env(pg_cluster, catalog_db, pg_env) -> dict[str, str]:
    """PG* for the fixture catalog's reader role on the throwaway server; no PG_METADATA_*,
    OTEL_* or DAGSTER_HOME from the outer environment."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PG_METADATA_", "OTEL_"))}
    out.pop("DAGSTER_HOME", None)
    out.update(PGUSER=catalog_db.reader_user, PGPASSWORD=catalog_db.reader_password)
    out.update(PGDATABASE=catalog_db.shop)
    return out
