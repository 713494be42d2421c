"""The headless CLI and the code location, run as a user would: as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pg-metadata"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def env(pg_cluster, catalog_db, pg_env) -> dict[str, str]:
    out = dict(os.environ)
    out.pop("DAGSTER_HOME", None)
    return out


def test_extract_to_default_folder(env, tmp_path):
    result = cli(
        ["extract", "--include", '{"^shop$": "*", "^crm$": "*"}', "--connection-name", "prod-pg"],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "2/2 database(s)" in result.stdout
    assert "shop: 1 Database, 7 Schema, 16 Table, 7 TablePartition, 3 View" in result.stdout
    manifest = json.loads(
        (tmp_path / "pg_metadata_output" / "default" / "latest" / "shop.json").read_text()
    )
    assert manifest["entities"]["Table"] == 16
    assert "Traceback" not in result.stderr and "DEBUG" not in result.stderr


def test_bad_filter_is_one_line_and_exit_2(env, tmp_path):
    result = cli(["extract", "--include", '{"^shop$": ["[a-"]}'], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "include filter" in lines[0] and "regular expression" in lines[0]
    assert not (tmp_path / "pg_metadata_output").exists()


def test_unreachable_server_is_one_line_and_exit_1(env, tmp_path):
    env = {**env, "PGPORT": "1", "PGPASSWORD": "sekret-value-123"}
    result = cli(["extract", "--retries", "0"], env, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot connect to PostgreSQL" in lines[0] and ":1/" in lines[0]
    assert "PGHOST/PGPORT" in lines[0]
    assert "sekret-value-123" not in result.stderr + result.stdout


def test_wrong_password_names_user_host_and_never_the_secret(env, tmp_path):
    env = {**env, "PGPASSWORD": "definitely-wrong-pw"}
    result = cli(["extract", "--retries", "0"], env, tmp_path)
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    assert "pgm_admin@" in result.stderr
    assert "definitely-wrong-pw" not in result.stderr + result.stdout


def test_definitions_validate(tmp_path):
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
