"""The Dagster Component as a `dg` user meets it: listed, scaffolded, checked, materialized."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from psycopg2 import sql as pgsql

from pg_metadata.orchestration.component import PostgresCatalogComponent, SourceAttributes
from pg_metadata.orchestration.definitions import source_definitions
from pg_metadata_tests.pipeline import run_source

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples" / "fleet"


def dg_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    """Run `dg` in the test's virtual environment, as a user of that environment would."""
    env = {**os.environ, **(env or {}), "VIRTUAL_ENV": str(BIN.parent), "NO_COLOR": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "dg"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_dg_lists_the_component(tmp_path):
    result = dg_cli(["list", "components", "--json"], ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    keys = {item["key"] for item in json.loads(result.stdout)["items"]}
    assert "pg_metadata.PostgresCatalogComponent" in keys


def test_dg_checks_this_project(tmp_path):
    result = dg_cli(["check", "defs"], ROOT, {"DAGSTER_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_scaffold_then_check_in_a_fresh_project(tmp_path):
    project = tmp_path / "my_catalog"
    (project / "my_catalog" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "my_catalog"\nversion = "0.1.0"\n\n'
        '[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "my_catalog"\n'
    )
    (project / "my_catalog" / "__init__.py").write_text("")
    (project / "my_catalog" / "defs" / "__init__.py").write_text("")
    shutil.copyfile(EXAMPLE / "fleet" / "definitions.py", project / "my_catalog" / "definitions.py")

    scaffold = dg_cli(["scaffold", "defs", "pg_metadata.PostgresCatalogComponent", "prod"], project)
    assert scaffold.returncode == 0, scaffold.stderr[-2000:]
    defs_yaml = project / "my_catalog" / "defs" / "prod" / "defs.yaml"
    text = defs_yaml.read_text()
    assert "type: pg_metadata.PostgresCatalogComponent" in text
    assert "name: prod" in text and "password_env: PROD_PG_PASSWORD" in text

    check = dg_cli(["check", "defs"], project, {"DAGSTER_HOME": str(tmp_path)})
    assert check.returncode == 0, check.stderr[-2000:]
    listed = dg_cli(["list", "defs", "--json"], project, {"DAGSTER_HOME": str(tmp_path)})
    assert listed.returncode == 0, listed.stderr[-2000:]
    defs = json.loads(listed.stdout)
    keys = {a["asset_key"] for a in defs["assets"]}
    assert {"prod/raw/tables", "prod/atlan/column", "prod/output/manifest"} <= keys
    assert {j["name"] for j in defs["jobs"]} >= {"prod__extract_database"}

    defs_yaml.write_text(text.replace("    port: 5432", "    prot: 5432"))
    bad = dg_cli(["check", "defs"], project, {"DAGSTER_HOME": str(tmp_path)})
    assert bad.returncode != 0 and "prot" in bad.stdout + bad.stderr


@pytest.fixture
def example_env(pg_cluster, pg_cluster2, catalog_db, tmp_path):
    """The example's two servers: orders_eu on the first cluster, warehouse on the second, both
    read by `catalog_reader` (the session's reader role on the first; made here on the second)."""
    servers = {"ORDERS": (pg_cluster, "orders_eu"), "ANALYTICS": (pg_cluster2, "warehouse")}
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "PG_METADATA_OUTPUT": str(tmp_path / "out")}
    (tmp_path / "home").mkdir()
    role = pgsql.Identifier(catalog_db.reader_user)
    pg_cluster2.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))
    pg_cluster2.execute(
        pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(role),
        params=(catalog_db.reader_password,),
    )
    for prefix, (cluster, db) in servers.items():
        cluster.create_database(
            db, "CREATE TABLE t (id int PRIMARY KEY); CREATE VIEW v AS SELECT id FROM t;"
        )
        cluster.execute(
            pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(pgsql.Identifier(db), role)
        )
        env[f"{prefix}_PGHOST"] = cluster.host
        env[f"{prefix}_PGPORT"] = str(cluster.port)
        env[f"{prefix}_PG_PASSWORD"] = catalog_db.reader_password
    yield env
    for cluster, db in servers.values():
        cluster.drop_database(db)
    pg_cluster2.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))


def test_the_example_fleet_materializes(example_env, tmp_path):
    listed = dg_cli(["list", "defs", "--json"], EXAMPLE, example_env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assets = {a["asset_key"]: a for a in json.loads(listed.stdout)["assets"]}
    assert assets["analytics/atlan/table"]["owners"] == [{"team": "analytics"}]  # translation
    assert assets["orders/atlan/table"]["owners"] == []
    for source, database in (("orders", "orders_eu"), ("analytics", "warehouse")):
        discover = dg_cli(
            ["launch", "--job", f"{source}__discover_databases"], EXAMPLE, example_env
        )
        assert discover.returncode == 0, discover.stderr[-3000:]
        extract = dg_cli(
            ["launch", "--job", f"{source}__extract_database", "--partition", database],
            EXAMPLE,
            example_env,
        )
        assert extract.returncode == 0, extract.stderr[-3000:]
        manifest = tmp_path / "out" / source / "latest" / f"{database}.json"
        counts = json.loads(manifest.read_text())["entities"]
        assert (counts["Table"], counts["View"], counts["Column"]) == (1, 1, 2)


def test_translation_changes_keys_and_groups_but_not_where_files_go(
    pg_cluster, catalog_db, tmp_path
):
    component = PostgresCatalogComponent(
        source=SourceAttributes(
            name="renamed",
            host=pg_cluster.host,
            port=pg_cluster.port,
            user=pg_cluster.admin_user,
            password=pg_cluster.admin_password,
            sslmode="disable",
            include='{"^crm$": "*"}',
            connection_qualified_name="default/postgres/3000000001",
            retries=0,
        ),
        translation=lambda spec, data: spec.replace_attributes(
            key=spec.key.with_prefix("catalog"), group_name=f"pg_{data.layer}"
        ),
    )
    source = component.source_config()
    defs = source_definitions(source, target=str(tmp_path), get_spec=component.get_asset_spec)
    graph = defs.resolve_asset_graph()
    column = graph.get(dg.AssetKey(["catalog", "renamed", "atlan", "column"]))
    assert column.group_name == "pg_transformed"
    assert dg.AssetKey(["catalog", "renamed", "raw", "columns"]) in column.parent_keys
    with dg.instance_for_test() as instance:
        run = run_source(source, instance, target=str(tmp_path), defs=defs)
    assert run.runs["crm"].success
    manifest = json.loads((tmp_path / "renamed" / "latest" / "crm.json").read_text())
    column_file = next(f for f in manifest["files"] if f["path"] == "transformed/column")
    assert column_file["asset"] == "catalog/renamed/atlan/column"
    assert "/renamed/runs/" in column_file["uri"]
    assert column_file["uri"].endswith("/transformed/column/crm.json")
