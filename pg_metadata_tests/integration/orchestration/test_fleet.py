"""Two sources on two servers in one code location: nothing shared, nothing mixed, nothing leaked.

The code location is loaded the way Dagster loads it (`pg_metadata.definitions` with
PG_METADATA_SOURCES pointing at a sources file); runs go through one Dagster instance.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import dagster as dg
import pytest
from psycopg2 import sql as pgsql

from pg_metadata.catalog.sources import load_sources_file
from pg_metadata_tests.integration.test_secrets_never_leak import event_log_text, files_text
from pg_metadata_tests.pipeline import plan_of, run_source

pytestmark = pytest.mark.integration

SHARED = "inventory"  # a database of the same name on both servers
SCHEMA = """
CREATE SCHEMA stock;
CREATE TABLE stock.items (id int PRIMARY KEY, sku text NOT NULL, note text);
CREATE VIEW stock.skus AS SELECT sku FROM stock.items;
"""
EAST_PASSWORD, WEST_PASSWORD = "FLEET-east-pw-51c2", "FLEET-west-pw-9e07"


def grant_reader(cluster, role: str, password: str, databases: list[str]) -> None:
    """A login role with CONNECT on the given databases only."""
    ident = pgsql.Identifier(role)
    cluster.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(ident))
    cluster.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(ident), params=(password,))
    for db in databases:
        cluster.execute(
            pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(pgsql.Identifier(db), ident)
        )


@pytest.fixture(scope="module")
def fleet(pg_cluster, pg_cluster2, tmp_path_factory):
    """A sources file naming both servers; `inventory` exists on both, with different tables."""
    pg_cluster.create_database(SHARED, SCHEMA)
    pg_cluster2.create_database(SHARED, SCHEMA + "CREATE TABLE stock.west_only (a int);")
    pg_cluster2.create_database("ledger", "CREATE TABLE entries (id int, amount numeric(12,2));")
    grant_reader(pg_cluster, "east_reader", EAST_PASSWORD, [SHARED])
    grant_reader(pg_cluster2, "west_reader", WEST_PASSWORD, [SHARED, "ledger"])
    path = tmp_path_factory.mktemp("fleet") / "sources.yaml"
    path.write_text(
        f"""\
sources:
  - name: east
    host: {pg_cluster.host}
    port: {pg_cluster.port}
    user: east_reader
    password_env: FLEET_EAST_PASSWORD
    sslmode: disable
    include: {{"^{SHARED}$": "*"}}
    connection_qualified_name: default/postgres/1000000001
    connection_name: east-pg
    max_connections: 2
    retries: 0
  - name: west
    host: {pg_cluster2.host}
    port: {pg_cluster2.port}
    user: west_reader
    password_env: FLEET_WEST_PASSWORD
    sslmode: disable
    include: {{"^({SHARED}|ledger)$": "*"}}
    connection_qualified_name: default/postgres/1000000002
    connection_name: west-pg
    max_connections: 3
    query_connections: 1
    retries: 0
"""
    )
    yield path
    for cluster, role, dbs in (
        (pg_cluster, "east_reader", [SHARED]),
        (pg_cluster2, "west_reader", [SHARED, "ledger"]),
    ):
        for db in dbs:
            cluster.drop_database(db)
        cluster.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module")
def code_location(fleet, tmp_path_factory):
    """The code location module, loaded with PG_METADATA_SOURCES set, and the output folder."""
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PG_METADATA_SOURCES", str(fleet))
        mp.setenv("PG_METADATA_OUTPUT", str(out))
        mp.setenv("FLEET_EAST_PASSWORD", EAST_PASSWORD)
        mp.setenv("FLEET_WEST_PASSWORD", WEST_PASSWORD)
        import pg_metadata.definitions

        module = importlib.reload(pg_metadata.definitions)
        yield module.defs, out
    importlib.reload(pg_metadata.definitions)


@pytest.fixture(scope="module")
def runs(code_location, fleet):
    defs, out = code_location
    with dg.instance_for_test() as instance:
        yield (
            {
                s.name: run_source(s, instance, target=str(out), defs=defs)
                for s in load_sources_file(fleet)
            },
            instance,
        )


def test_each_source_has_its_own_keys_partitions_jobs_and_pool(code_location, fleet):
    defs, _ = code_location
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for source in ("east", "west"):
        assert {
            f"{source}/raw/tables",
            f"{source}/atlan/column",
            f"{source}/output/manifest",
        } <= keys
        tables = graph.get(dg.AssetKey([source, "raw", "tables"]))
        assert tables.partitions_def.name == f"{source}_databases"
        assert tables.group_name == source
        assert (
            defs.resolve_job_def(f"{source}__extract_database").tags["pg_metadata/source"] == source
        )
    east, west = (plan_of(s) for s in load_sources_file(fleet))
    assert (east.pool, west.pool) == ("pg_metadata/east", "pg_metadata/west")
    sensors = {s.name for s in defs.get_repository_def().sensor_defs}
    assert {"east__catalog_changes", "west__database_discovery"} <= sensors
    schedules = {s.name for s in defs.get_repository_def().schedule_defs}
    assert schedules == {"east__nightly_refresh", "west__nightly_refresh"}


def test_a_database_of_the_same_name_comes_out_once_per_source(runs, code_location):
    results, _ = runs
    _, out = code_location
    assert sorted(results["east"].runs) == [SHARED]
    assert sorted(results["west"].runs) == sorted(["ledger", SHARED])
    assert all(r.success for res in results.values() for r in res.runs.values())
    east, west = results["east"], results["west"]
    assert (out / "east" / "latest" / f"{SHARED}.json").exists()
    assert (out / "west" / "latest" / f"{SHARED}.json").exists()
    assert east.manifest(SHARED)["entities"]["Table"] == 1
    assert west.manifest(SHARED)["entities"]["Table"] == 2  # west_only exists on west alone
    east_qns, west_qns = east.qualified_names(SHARED), west.qualified_names(SHARED)
    assert all(q.startswith("default/postgres/1000000001/") for q in east_qns)
    assert all(q.startswith("default/postgres/1000000002/") for q in west_qns)
    assert {f["uri"].split("/runs/")[0] for f in east.manifest(SHARED)["files"]} == {
        str(out / "east")
    }
    assert east.manifest(SHARED)["source"] == "east"


def test_pools_follow_each_sources_connection_cap(runs):
    _, instance = runs
    storage = instance.event_log_storage
    # east: 2 sessions, 2 per database -> 1 step at a time; west: 3 sessions, 1 each -> 3
    assert storage.get_concurrency_info("pg_metadata/east").slot_count == 1
    assert storage.get_concurrency_info("pg_metadata/west").slot_count == 3


def test_one_server_down_fails_only_its_own_runs(fleet, pg_cluster, tmp_path):
    down = fleet.read_text().replace(f"port: {pg_cluster.port}", "port: 1", 1)
    path = tmp_path / "sources.yaml"
    path.write_text(down)
    east, west = load_sources_file(path)
    with dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_EAST_PASSWORD", EAST_PASSWORD)
        mp.setenv("FLEET_WEST_PASSWORD", WEST_PASSWORD)
        failed = run_source(east, instance, target=str(tmp_path), raise_on_error=False)
        ok = run_source(west, instance, target=str(tmp_path), raise_on_error=False)
    assert not failed.discover.success and not failed.runs
    (event,) = failed.discover.get_step_failure_events()
    message = event.step_failure_data.user_failure_data.description
    assert message.startswith("cannot connect to PostgreSQL (basic) as east_reader@")
    assert ":1/postgres" in message and "\n" not in message
    assert all(r.success for r in ok.runs.values()) and sorted(ok.runs) == sorted(
        ["ledger", SHARED]
    )


def test_secrets_of_both_sources_never_leak(runs, code_location, caplog, capfd):
    """Not in the event log, run config, output, what the UI is sent, stdout or logs."""
    from dagster._core.remote_representation.external_data import RepositorySnap

    _, instance = runs
    defs, out = code_location
    caplog.set_level(logging.DEBUG)
    repo = defs.get_repository_def()
    places = {
        "event log, run config, metadata": event_log_text(instance),
        "output files": files_text(Path(out)),
        "what the UI is sent (repository snapshot)": dg.serialize_value(
            RepositorySnap.from_def(repo)
        ),
        "stdout/stderr": "".join(capfd.readouterr()),
        "python logs": caplog.text,
    }
    for where, text in places.items():
        assert text or where in ("stdout/stderr", "python logs"), where
        for secret in (EAST_PASSWORD, WEST_PASSWORD):
            assert secret not in text, f"a password leaked into {where}"


def test_instance_run_retries_never_rerun_a_configuration_failure(fleet, tmp_path):
    """Even on an instance that retries failed steps' runs, a refused password is final; an
    ordinary job failing the same way would be re-run."""
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

    east, _ = load_sources_file(fleet)
    retries = {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": True}

    @dg.op
    def boom() -> None:
        raise dg.Failure("boom")

    @dg.job
    def plain() -> None:
        boom()

    with (
        dg.instance_for_test(overrides={"run_retries": retries}) as instance,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("FLEET_EAST_PASSWORD", "not-the-password")
        refused = run_source(east, instance, target=str(tmp_path), raise_on_error=False)
        other = plain.execute_in_process(instance=instance, raise_on_error=False)
        assert not refused.discover.success and not other.success
        runs = {r.run_id: r for r in instance.get_runs()}
        assert not should_retry(runs[refused.discover.run_id], instance)
        assert should_retry(runs[other.run_id], instance)
