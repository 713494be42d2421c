"""The headless CLI and the code location, run as a user would: as subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pg_metadata_tests.integration.cli.conftest import pg_metadata

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


cli = pg_metadata


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


def test_a_terminal_gets_a_live_line_per_database(env, tmp_path):
    """On a terminal, each database's line is redrawn in place while it runs (phase, rows read,
    entities written, elapsed), then replaced by its summary; piped, there is no live line."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "pg-metadata"), "extract", "--include", '{"^(shop|crm)$": "*"}', "--jobs", "1"],
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
    )
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=60) == 0, seen
    frames = [f for f in seen.decode().split("\r\x1b[K") if f.startswith("pg-metadata: [")]
    live = [f for f in frames if "rows read" in f]
    assert {f.split(":", 2)[1] for f in live} >= {" [1/2] default/crm", " [2/2] default/shop"}
    shop = [f for f in live if "default/shop" in f]
    # a phase each (which ones a 4 Hz redraw catches depends on timing), counts that only grow
    from pg_metadata.cli.live import LABELS

    phases = ("starting", *LABELS.values())
    assert all(f.split(": ", 2)[2].startswith(phases) for f in shop), shop
    rows = [int(f.split(", ")[1].split(" ")[0].replace(",", "")) for f in shop]
    assert rows == sorted(rows) and rows[-1] > 0, shop
    assert re.search(r"\[2/2\] default/shop: \d+ entities in [\d.]+s\r\n", seen.decode())
    piped = cli(["extract", "--include", '{"^crm$": "*"}'], env, tmp_path)
    assert "\r" not in piped.stderr + piped.stdout and "rows read" not in piped.stdout


def _entities_of(manifest: Path) -> dict[str, list[dict]]:
    """Each entity file of a published database, without the attributes naming the run."""
    out = {}
    for f in json.loads(manifest.read_text())["files"]:
        if f["path"].startswith("transformed/"):
            lines = [json.loads(line) for line in Path(f["uri"]).read_text().splitlines()]
            for e in lines:
                for attribute in ("lastSyncRun", "lastSyncRunAt"):
                    e["attributes"].pop(attribute)
            out[f["path"]] = lines
    return out


def test_databases_side_by_side_write_what_one_by_one_writes(env, tmp_path):
    """--jobs 2 runs two databases at once, each in a forked worker on the CLI's in-memory
    instance; every entity file is what --jobs 1 writes, the summary in discovery order."""
    include = '{"^(shop|crm|zoo)$": "*"}'
    outcomes = {}
    for jobs in ("1", "2"):
        args = ["extract", "--json", "--include", include, "--output", f"out{jobs}"]
        result = cli([*args, "--jobs", jobs], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        outcomes[jobs] = json.loads(result.stdout)["sources"][0]
    serial, parallel = outcomes["1"], outcomes["2"]
    assert serial["jobs"] == 1 and parallel["jobs"] == 2
    names = [d["database"] for d in parallel["databases"]]
    assert names == [d["database"] for d in serial["databases"]] == sorted(names)
    assert [d["entities"] for d in parallel["databases"]] == [
        d["entities"] for d in serial["databases"]
    ]
    for name in names:
        one = _entities_of(tmp_path / "out1" / "default" / "latest" / f"{name}.json")
        two = _entities_of(tmp_path / "out2" / "default" / "latest" / f"{name}.json")
        assert one == two and sum(map(len, two.values())) > 10, name


def test_jobs_stay_within_the_connection_cap(env, tmp_path):
    """Two connections a database and at most three sessions on the server: one at a time."""
    capped = {**env, "PG_METADATA_MAX_CONNECTIONS": "3"}
    args = ["extract", "--json", "--include", '{"^(shop|crm)$": "*"}', "--jobs", "4"]
    result = cli(args, capped, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sources"][0]["jobs"] == 1
    result = cli([*args[:-1], "2"], {**env, "PG_METADATA_MAX_CONNECTIONS": "4"}, tmp_path)
    assert json.loads(result.stdout)["sources"][0]["jobs"] == 2


@pytest.mark.parametrize(
    ("args", "variable", "message"),
    [
        (["--jobs", "0"], None, "--jobs '0' must be a whole number of at least 1"),
        ([], "many", "PG_METADATA_JOBS 'many' must be a whole number of at least 1"),
    ],
)
def test_bad_jobs_is_one_line_and_exit_2(env, tmp_path, args, variable, message):
    environment = {**env, **({"PG_METADATA_JOBS": variable} if variable else {})}
    result = cli(["extract", *args], environment, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"pg-metadata: error: {message}"]


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


def sources_file(tmp_path: Path, pg_cluster, extra: str = "", down_port: int | None = None) -> Path:
    """Two sources on the test server (shop and crm), the first maybe pointed at a closed port."""
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"""\
sources:
  - name: shop_db
    host: {pg_cluster.host}
    port: {down_port or pg_cluster.port}
    user: {pg_cluster.admin_user}
    password_env: CLI_TEST_PASSWORD
    sslmode: disable
    include: {{"^shop$": "*"}}
    connection_qualified_name: default/postgres/2000000001
    retries: 0
{extra}  - name: crm_db
    host: {pg_cluster.host}
    port: {pg_cluster.port}
    user: {pg_cluster.admin_user}
    password_env: CLI_TEST_PASSWORD
    sslmode: disable
    include: {{"^crm$": "*"}}
    connection_qualified_name: default/postgres/2000000002
    retries: 0
"""
    )
    return path


def test_extract_a_sources_file(env, pg_cluster, tmp_path):
    env = {**env, "CLI_TEST_PASSWORD": pg_cluster.admin_password, "PGPASSWORD": "unused"}
    path = sources_file(tmp_path, pg_cluster)
    result = cli(["extract", "--sources", str(path)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1/1 database(s) from shop_db (" in result.stdout
    assert "1/1 database(s) from crm_db (" in result.stdout
    out = tmp_path / "pg_metadata_output"
    shop = json.loads((out / "shop_db" / "latest" / "shop.json").read_text())
    assert shop["source"] == "shop_db" and shop["entities"]["Table"] == 16
    assert (out / "crm_db" / "latest" / "crm.json").exists()

    (tmp_path / "x").mkdir()
    only = cli(["extract", "--sources", str(path), "--source", "crm_db"], env, tmp_path / "x")
    assert only.returncode == 0 and "crm_db" in only.stdout and "shop_db" not in only.stdout


def test_one_server_down_fails_alone(env, pg_cluster, tmp_path):
    env = {**env, "CLI_TEST_PASSWORD": pg_cluster.admin_password}
    path = sources_file(tmp_path, pg_cluster, down_port=1)
    result = cli(["extract", "--sources", str(path)], env, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pg-metadata: error: source 'shop_db': cannot connect to PostgreSQL")
    assert "1/1 database(s) from crm_db" in result.stdout
    assert (tmp_path / "pg_metadata_output" / "crm_db" / "latest" / "crm.json").exists()


def test_sources_file_mistakes_are_one_line_before_connecting(env, pg_cluster, tmp_path):
    path = sources_file(tmp_path, pg_cluster, extra="    hots: oops\n")
    result = cli(["extract", "--sources", str(path)], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"pg-metadata: error: sources file {path}, source 'shop_db': unknown key 'hots' "
        "(did you mean 'host'?)"
    ]
    assert not (tmp_path / "pg_metadata_output").exists()
    unknown = cli(
        ["extract", "--sources", str(sources_file(tmp_path, pg_cluster)), "--source", "nope"],
        env,
        tmp_path,
    )
    assert unknown.returncode == 2 and "unknown source 'nope'" in unknown.stderr
    mixed = cli(["extract", "--sources", str(path), "--host", "x"], env, tmp_path)
    assert mixed.returncode == 2 and "--host describes the default source" in mixed.stderr
