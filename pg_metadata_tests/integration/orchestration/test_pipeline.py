"""End to end on the real cluster: catalog -> raw Parquet -> Atlan entities -> manifest."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import dagster as dg
import pytest

from pg_metadata.catalog.datasets import BY_NAME
from pg_metadata_tests.pipeline import CONNECTION_QN, run_pipeline

pytestmark = pytest.mark.integration

C = CONNECTION_QN
ODD = 'Odd "DB".name/x'
FIXTURE_DBS = json.dumps({"^shop$": "*", "^crm$": "*", "^" + re.escape(ODD) + "$": "*"})
SYSTEM = "('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"


@pytest.fixture(scope="module")
def full_run(pg_cluster, catalog_db, tmp_path_factory):
    """One extraction of the three fixture databases to a local folder."""
    target = str(tmp_path_factory.mktemp("out"))
    with dg.instance_for_test() as instance:
        yield run_pipeline(pg_cluster, instance, target=target, include=FIXTURE_DBS)


@pytest.fixture(scope="module")
def shop(full_run):
    """All entities of the shop database, by qualifiedName."""
    return {e["attributes"]["qualifiedName"]: e for e in full_run.all_entities("shop")}


def test_every_fixture_database_becomes_a_partition(full_run):
    assert sorted(full_run.runs) == sorted(["shop", "crm", ODD])
    assert all(r.success for r in full_run.runs.values())


def test_entity_counts_per_type(full_run):
    counts = full_run.manifest("shop")["entities"]
    assert counts == {
        "Database": 1,
        "Schema": 7,
        "Table": 16,
        "TablePartition": 7,
        "View": 3,
        "MaterialisedView": 1,
        "Column": counts["Column"],
        "Procedure": 0,
        "Process": 4,  # one per view and materialized view
        "ColumnProcess": counts["ColumnProcess"],
    }
    assert counts["ColumnProcess"] > 0


def test_every_live_column_exactly_once(full_run, pg_cluster, shop):
    (expected,) = pg_cluster.query(
        "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f') "
        f"AND n.nspname NOT IN {SYSTEM}",
        dbname="shop",
    )[0]
    columns = [e for e in shop.values() if e["typeName"] == "Column"]
    assert len(columns) == expected
    assert full_run.manifest("shop")["entities"]["Column"] == expected
    assert not any(e["attributes"]["name"] == "legacy" for e in columns), "dropped column leaked"


def test_qualified_names_unique_and_references_resolve(full_run):
    for db in full_run.runs:
        entities = full_run.all_entities(db)
        qns = [e["attributes"]["qualifiedName"] for e in entities]
        assert len(qns) == len(set(qns)), Counter(qns).most_common(3)
        known = set(qns)
        for e in entities:
            for value in e["attributes"].values():
                if isinstance(value, dict) and "uniqueAttributes" in value:
                    target = value["uniqueAttributes"]["qualifiedName"]
                    assert target in known, f"{e['attributes']['qualifiedName']} -> {target}"


def test_column_count_matches_emitted_columns(shop):
    per_parent = Counter()
    for e in shop.values():
        if e["typeName"] == "Column":
            a = e["attributes"]
            per_parent[a.get("tableQualifiedName") or a.get("viewQualifiedName")] += 1
    for qn, e in shop.items():
        if e["typeName"] in ("Table", "TablePartition", "View", "MaterialisedView"):
            assert e["attributes"]["columnCount"] == per_parent[qn], qn


def test_partitions_two_levels(shop):
    m2025 = shop[f"{C}/shop/events/measurements_2025"]
    assert m2025["typeName"] == "TablePartition"
    assert m2025["attributes"]["isPartitioned"] is True
    assert m2025["attributes"]["partitionStrategy"] == "l"
    assert m2025["attributes"]["parentTable"]["uniqueAttributes"]["qualifiedName"] == (
        f"{C}/shop/events/measurements"
    )
    eu = shop[f"{C}/shop/events/measurements_2025_eu"]["attributes"]
    assert eu["parentTablePartition"]["uniqueAttributes"]["qualifiedName"] == (
        f"{C}/shop/events/measurements_2025"
    )
    assert "parentTable" not in eu and "atlanSchema" not in eu
    assert eu["tableQualifiedName"] == f"{C}/shop/events/measurements"
    assert eu["constraint"] == "FOR VALUES IN ('eu')"
    parent = shop[f"{C}/shop/events/measurements"]["attributes"]
    assert parent["isPartitioned"] is True and parent["partitionStrategy"] == "r"
    assert parent["partitionCount"] == 2
    key_col = shop[f"{C}/shop/events/measurements/logdate"]["attributes"]
    assert key_col["isPartition"] is True and key_col["partitionOrder"] == 1
    part_col = shop[f"{C}/shop/events/measurements_2024/logdate"]["attributes"]
    assert part_col["tablePartition"]["typeName"] == "TablePartition"
    default = shop[f"{C}/shop/events/by_kind_default"]["attributes"]
    assert default["constraint"] == "DEFAULT"


def test_views_materialized_views_and_foreign_table(shop):
    view = shop[f"{C}/shop/sales/top_customers"]
    assert view["typeName"] == "View"
    assert view["attributes"]["definition"].startswith("CREATE OR REPLACE VIEW top_customers AS")
    assert "order_totals" in view["attributes"]["definition"]  # a view over a view
    mv = shop[f"{C}/shop/sales/daily_revenue"]
    assert mv["typeName"] == "MaterialisedView"
    assert mv["attributes"]["definition"].startswith("CREATE MATERIALIZED VIEW daily_revenue AS")
    assert shop[f"{C}/shop/sales/daily_revenue/day"]["attributes"]["materialisedView"]
    ft = shop[f"{C}/shop/ext/readings"]
    assert ft["typeName"] == "Table"
    assert ft["customAttributes"]["table_type"] == "FOREIGN TABLE"
    assert ft["customAttributes"]["foreign_data_wrapper"] == "file_fdw"
    assert shop[f"{C}/shop/sales/dup_name"]["typeName"] == "View"
    assert shop[f"{C}/shop/events/dup_name"]["typeName"] == "Table"


def test_column_details_are_exact(shop):
    def col(path: str) -> dict:
        return shop[f"{C}/shop/{path}"]["attributes"]

    order_id = col("sales/order_items/order_id")
    assert order_id["isPrimary"] is True and order_id["isForeign"] is True
    email = col("sales/customers/email")
    assert email["maxLength"] == 255 and email["isNullable"] is False
    assert email["rawDataTypeDefinition"] == "character varying(255)"
    assert email["dataType"] == "varchar"
    balance = col("sales/customers/balance")
    assert (balance["precision"], balance["numericScale"]) == (12, 2.0)
    assert balance["defaultValue"] == "0"
    ident = shop[f"{C}/shop/sales/customers/customer_id"]["customAttributes"]
    assert ident["is_identity"] == "YES" and ident["identity_generation"] == "ALWAYS"
    gen = shop[f"{C}/shop/sales/orders/total_with_tax"]["customAttributes"]
    assert gen["is_generated"] == "YES" and "amount" in gen["generation_expression"]
    assert col("sales/orders/tags")["dataType"] == "_text"
    assert col("sales/orders/tags")["rawDataTypeDefinition"] == "text[]"


def test_awkward_names_verbatim(shop):
    lines = shop[f"{C}/shop/Mixed Case/Order Lines"]
    assert lines["attributes"]["name"] == "Order Lines"
    names = {
        e["attributes"]["name"]
        for e in shop.values()
        if e["typeName"] == "Column"
        and e["attributes"].get("tableQualifiedName") == f"{C}/shop/Mixed Case/Order Lines"
    }
    assert {"Line #", "ünïcödé", 'quote"d', "dot.ted", "slash/ed"} <= names
    assert f"{C}/shop/Mixed Case/Order Lines/slash/ed" in shop
    assert f"{C}/shop/sales/a.b" in shop and f"{C}/shop/sales.a/b" in shop


def test_odd_database_name(full_run):
    entities = full_run.all_entities(ODD)
    db = next(e for e in entities if e["typeName"] == "Database")
    assert db["attributes"]["name"] == ODD
    assert db["attributes"]["qualifiedName"] == f'{C}/Odd "DB".name/x'
    assert any(e["attributes"]["qualifiedName"].endswith("/public/t/a") for e in entities)


def test_descriptions_cleaned(shop):
    orders = shop[f"{C}/shop/sales/orders"]["attributes"]
    assert "<" not in orders["description"] and "  " not in orders["description"]
    assert "\n" not in orders["description"]
    assert "description" in shop[f"{C}/shop/sales"]["attributes"]


def test_row_counts_and_sizes(shop):
    customers = shop[f"{C}/shop/sales/customers"]["attributes"]
    assert customers["rowCount"] == 100
    assert customers["sizeBytes"] > 0
    assert "rowCount" not in shop[f"{C}/shop/sales/products"]["attributes"]  # never analyzed


def test_raw_parquet_has_the_declared_schema(full_run):
    for name in ("schemas", "tables", "columns"):
        table = full_run.raw("shop", f"raw/{name}")
        assert table.schema.names == BY_NAME[name].column_names
        assert table.num_rows == full_run.file("shop", f"raw/{name}")["rows"]
    assert "shop" in full_run.raw(None, "raw/databases").column("database_name").to_pylist()


def test_manifest_lists_every_file_with_its_row_count(full_run):
    manifest = full_run.manifest("shop")
    assert len(manifest["files"]) == 1 + 6 + 10  # raw databases, 6 raw datasets, 10 entity types
    for f in manifest["files"]:
        local = full_run.store.fetch(f["uri"])
        if f["uri"].endswith(".json"):
            assert len(local.read_text("utf-8").splitlines()) == f["rows"]
        assert local.stat().st_size == f["bytes"]
        assert hashlib.sha256(local.read_bytes()).hexdigest() == f["sha256"], f["path"]
    run_id = full_run.runs["shop"].run_id
    assert manifest["run_id"] == run_id
    run_copy = full_run.store.read_bytes(f"runs/{run_id}/manifest/shop.json")
    assert json.loads(run_copy) == manifest


def test_entities_carry_run_and_connection(shop, full_run):
    run_id = full_run.runs["shop"].run_id
    for e in shop.values():
        a = e["attributes"]
        assert a["lastSyncRun"] == run_id and a["connectionName"] == "prod-pg"
        assert a["connectionQualifiedName"] == C and a["connectorName"] == "postgres"
        assert a["lastSyncWorkflowName"] == "default__extract_database"


def test_integrity_checks_ran_and_passed(full_run):
    for db, result in full_run.runs.items():
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == 29, db  # 10 entity types, 1-4 checks each
        failed = [e.check_name for e in evaluations if not e.passed]
        assert not failed, (db, failed)


def test_materialization_metadata_a_user_looks_at(full_run):
    result = full_run.runs["shop"]
    by_key = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    column = by_key["default/atlan/column"]
    assert column["dagster/row_count"].value == full_run.manifest("shop")["entities"]["Column"]
    assert "| Column |" in column["preview"].value
    lineage = column["dagster/column_lineage"].value
    assert [d.column_name for d in lineage.deps_by_column["attributes.dataType"]] == ["data_type"]
    tables = by_key["default/raw/tables"]
    assert tables["server_version"].value.startswith(("15", "16", "17", "18", "14"))
    assert len(tables["catalog_fingerprint"].value) == 32
    assert tables["statements_per_database"].value == 17  # 2 connections, one snapshot
    assert str(tables["uri"].value).endswith("/raw/tables/shop.parquet")
    manifest = by_key["default/output/manifest"]
    assert manifest["entities"].value["Table"] == 16
    assert str(manifest["latest"].value).endswith("latest/shop.json")


def test_an_ephemeral_instance_skips_the_fingerprint_nobody_can_read(
    pg_cluster, catalog_db, tmp_path
):
    """The change sensor compares the fingerprint recorded with raw/tables; an instance that
    ends with the command (the CLI without DAGSTER_HOME) records it for nobody."""
    run = run_pipeline(
        pg_cluster,
        dg.DagsterInstance.ephemeral(),
        target=str(tmp_path),
        include='{"^shop$": "*"}',
    )
    tables = next(
        e.step_materialization_data.materialization.metadata
        for e in run.runs["shop"].get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["default", "raw", "tables"])
    )
    assert "catalog_fingerprint" not in tables
    assert tables["statements_per_database"].value == 16  # the 17 above, less its query
    assert run.manifest("shop")["entities"]["Table"] == 16


def test_asset_definitions_explain_themselves():
    from pg_metadata.definitions import defs

    graph = defs.resolve_asset_graph()
    raw_tables = graph.get(dg.AssetKey(["default", "raw", "tables"]))
    assert raw_tables.group_name == "default" and raw_tables.kinds >= {"postgres"}
    schema = raw_tables.metadata["dagster/column_schema"]
    assert "view_dependencies" in [c.name for c in schema.columns]
    column = graph.get(dg.AssetKey(["default", "atlan", "column"]))
    assert column.group_name == "default" and "atlan" in column.kinds
    assert dg.AssetKey(["default", "raw", "columns"]) in column.parent_keys
    assert column.description and raw_tables.description


def test_postgres_objects_browsable_as_external_assets(full_run, monkeypatch):
    from pg_metadata.orchestration.definitions import build_definitions

    def graph(browse: bool):
        defs = build_definitions([full_run.source], target=full_run.target, browse=browse)
        return defs.resolve_asset_graph()

    def pg(*path: str) -> dg.AssetKey:
        return dg.AssetKey(["default", "postgres", *path])

    monkeypatch.setenv("PG_METADATA_BROWSE_MAX", "5000")
    browsed = graph(True)
    objects = {k for k in browsed.get_all_asset_keys() if k.path[1] == "postgres"}
    top = browsed.get(pg("shop", "sales", "top_customers"))
    assert top.is_external and not top.is_materializable
    assert pg("shop", "sales", "order_totals") in top.parent_keys
    assert top.kinds == {"postgres", "view"} and top.group_name == "default_pg_shop"
    assert pg("shop", "Mixed Case", "Order Lines") in objects
    assert not any("measurements_2024" in k.path[-1] for k in objects)  # partitions folded
    odd = [k for k in objects if k.path[2].startswith("Odd")]
    assert odd == [pg('Odd "DB".name%2Fx', "public", "t")]
    assert not [k for k in graph(False).get_all_asset_keys() if k.path[1] == "postgres"]


def test_view_lineage_parsed_in_a_forked_process_is_the_same(
    pg_cluster, catalog_db, tmp_path, monkeypatch, full_run
):
    """Big catalogs parse their views' lineage in a forked process that reads the raw files
    itself; its Process and ColumnProcess files are those of the in-process parse."""
    from pg_metadata.orchestration import entity_assets

    forked: list[int] = []
    real = entity_assets.Background

    def counting(doing, fn, args, fork=True):
        forked.append(fork)
        return real(doing, fn, args, fork)

    monkeypatch.setattr(entity_assets, "BACKGROUND_VIEWS", 1)
    monkeypatch.setattr(entity_assets, "Background", counting)
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include='{"^shop$": "*"}')
    assert forked == [True]

    def without_run(entities):
        for e in entities:
            for key in ("lastSyncRun", "lastSyncRunAt"):
                e["attributes"].pop(key)
        return entities

    for path in ("transformed/process", "transformed/column_process"):
        processes = without_run(run.entities("shop", path))
        assert len(processes) > 2, path
        assert processes == without_run(full_run.entities("shop", path)), path
