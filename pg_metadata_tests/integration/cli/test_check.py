"""`pg-metadata check` (the preflight) and the output probe of `extract`, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from psycopg2 import sql as pgsql

from pg_metadata_tests.integration.cli.conftest import pg_metadata

pytestmark = pytest.mark.integration


@pytest.fixture
def env(reader_env) -> dict[str, str]:
    return reader_env


run = pg_metadata


def checks(result: subprocess.CompletedProcess) -> dict[str, dict]:
    """The checks of the one source of a `check --json`, by name."""
    (report,) = json.loads(result.stdout).values()
    return {c["name"]: c for c in report["checks"]}


def test_a_ready_source_passes_every_check(env, tmp_path):
    result = run(["check", "--include", '{"^(shop|zoo)$": "*"}', "--output", "out"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pg-metadata: source 'default': ready"
    assert all(line.startswith("  [ok] ") for line in lines[1:]), lines
    text = result.stdout
    assert "Authentication successful as catalog_reader" in text
    assert "meets minimum required version 10" in text
    assert "connected to 2 database(s): shop, zoo" in text
    assert "Tables check successful. Table count:" in text
    assert "(shop " in text and ", zoo " in text
    assert "allowed: each database is read on 2 connections" in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*probe*"))

    as_json = run(["check", "--json", "--include", '{"^shop$": "*"}'], env, tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    (report,) = json.loads(as_json.stdout).values()
    assert report["status"] == "ready" and report["total_duration_ms"] >= 0
    assert all(set(c) == {"name", "passed", "message"} for c in report["checks"])


def test_wrong_password_fails_the_credentials_and_skips_the_rest(env, tmp_path, catalog_db):
    env = {**env, "PGPASSWORD": "wrong-pw-4411"}
    result = run(["check", "--json"], env, tmp_path)
    assert result.returncode == 1
    found = checks(result)
    assert not found["credentials"]["passed"]
    assert "password authentication failed" in found["credentials"]["message"]
    assert found["tables"]["message"] == "not checked: the credentials check failed"
    assert found["output"]["passed"]  # the other layers are still checked
    assert "wrong-pw-4411" not in result.stdout + result.stderr


def test_missing_databases_schemas_and_connect_privileges_are_named(env, tmp_path):
    include = '{"^nosuchdb$": "*", "^shop$": ["^nosuch_schema$"], "^zoo$": "*"}'
    found = checks(run(["check", "--json", "--include", include], env, tmp_path))
    message = found["databaseSchema"]["message"]
    assert not found["databaseSchema"]["passed"]
    assert "database ^nosuchdb$" in message
    assert "schema ^nosuch_schema$ of database ^shop$" in message
    assert "zoo" not in message

    denied = checks(run(["check", "--json", "--include", '{"^(shop|crm)$": "*"}'], env, tmp_path))
    assert not denied["connect"]["passed"]
    assert "may not CONNECT to crm" in denied["connect"]["message"]
    assert "GRANT CONNECT ON DATABASE" in denied["connect"]["message"]


def test_an_old_server_fails_the_version_check(env, tmp_path):
    env = {**env, "PG_METADATA_MIN_SERVER_VERSION": "99"}
    result = run(["check"], env, tmp_path)
    assert result.returncode == 1
    assert "[FAILED] version: Server version 15." in result.stdout
    assert "is older than the minimum 99 (PG_METADATA_MIN_SERVER_VERSION)" in result.stdout
    assert result.stderr.strip() == "pg-metadata: error: preflight failed (see the FAILED checks)"
    bad = run(["check"], {**env, "PG_METADATA_MIN_SERVER_VERSION": "ten"}, tmp_path)
    assert bad.returncode == 2 and "is not a version" in bad.stderr


def test_refused_snapshot_export_says_the_run_uses_one_connection(
    env, tmp_path, pg_cluster, catalog_db
):
    fn = pgsql.SQL("FUNCTION pg_catalog.pg_export_snapshot()")
    pg_cluster.execute(
        pgsql.SQL("REVOKE EXECUTE ON {} FROM PUBLIC").format(fn), dbname=catalog_db.shop
    )
    try:
        found = checks(run(["check", "--json", "--include", '{"^shop$": "*"}'], env, tmp_path))
    finally:
        pg_cluster.execute(
            pgsql.SQL("GRANT EXECUTE ON {} TO PUBLIC").format(fn), dbname=catalog_db.shop
        )
    assert found["snapshotExport"]["passed"]
    message = found["snapshotExport"]["message"]
    assert message.startswith("refused (") and "permission denied" in message
    assert message.endswith("the run will read each database on one connection")


def test_output_that_cannot_be_written_fails_the_output_check(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    found = checks(run(["check", "--json", "--output", str(blocker / "out")], env, tmp_path))
    assert not found["output"]["passed"]
    assert str(blocker / "out") in found["output"]["message"]


def test_missing_bucket_fails_check_and_extract_before_the_server_is_touched(
    env, tmp_path, aws_env
):
    env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("AWS_")}}
    found = checks(run(["check", "--json", "--output", "s3://no-such-bucket-pgm/x"], env, tmp_path))
    assert not found["output"]["passed"]
    assert "no-such-bucket-pgm" in found["output"]["message"]

    # the server is unreachable too: the bucket is what extract reports, so nothing was read
    down = {**env, "PGPORT": "1"}
    result = run(
        ["extract", "--output", "s3://no-such-bucket-pgm/x", "--retries", "0"], down, tmp_path
    )
    assert result.returncode == 2  # the output given is wrong: fix it, as for a bad filter
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no-such-bucket-pgm" in lines[0] and "cannot connect" not in lines[0]
    assert "Dagster" not in lines[0] and "Error occurred while" not in lines[0]


def test_an_output_failure_mid_run_is_one_line_naming_target_and_cause(env, tmp_path):
    """The folder passes the probe, but a file sits where the run's folder must go."""
    out = tmp_path / "out"
    (out / "default").mkdir(parents=True)
    (out / "default" / "runs").write_text("in the way")
    result = run(["extract", "--include", '{"^shop$": "*"}', "--output", str(out)], env, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    where = out / "default"
    assert lines[0].startswith(
        f"pg-metadata: error: source 'default': cannot write raw/databases to {where}: "
        "Not a directory"
    )
    assert "Dagster" not in lines[0] and "Error occurred while" not in lines[0]
    assert not (out / "default" / "latest").exists()


def test_a_transient_failure_says_it_retries(env, tmp_path):
    env = {**env, "PGPORT": "1"}  # nothing listens: connection refused, a transient error
    result = run(["extract", "--retries", "1", "--output", "out"], env, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("pg-metadata: retrying in 2 s (1/1): cannot connect to PostgreSQL")
    assert lines[1].startswith("pg-metadata: error: source 'default': cannot connect")
    quiet = run(["extract", "--retries", "1", "--quiet", "--output", "out"], env, tmp_path)
    assert len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr


def test_a_dagster_home_without_yaml_prints_no_banner(env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run(["extract", "--output", "out"], {**env, "DAGSTER_HOME": str(home)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no telemetry banner, no dagster.yaml notice
    assert (home / "history" / "runs.db").exists()  # the runs are kept in that home


def test_json_summary_for_scripts(env, tmp_path):
    result = run(
        ["extract", "--json", "--include", '{"^(shop|zoo)$": "*"}', "--output", "out"],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert doc["status"] == "success"
    (source,) = doc["sources"]
    by_name = {d["database"]: d for d in source["databases"]}
    assert sorted(by_name) == ["shop", "zoo"]
    shop = by_name["shop"]
    assert shop["status"] == "success" and shop["error"] is None
    assert shop["entities"]["Table"] == 16 and shop["seconds"] > 0
    assert json.loads(Path(shop["manifest"]).read_text())["entities"] == shop["entities"]
