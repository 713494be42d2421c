"""The catalog beyond relations and columns, on the `zoo` fixture, checked against pg_catalog:
routines, keys and links, constraints, indexes, triggers, policies, inheritance, view lineage,
and objects that used to cost a whole database."""

from __future__ import annotations

import json
from collections import defaultdict

import dagster as dg
import psycopg2
import pytest

from pg_metadata.catalog.reader import connection_lost, describe_query_error
from pg_metadata_tests.pipeline import CONNECTION_QN, run_pipeline

pytestmark = pytest.mark.integration
Z = f"{CONNECTION_QN}/zoo"


@pytest.fixture(scope="module")
def zoo_run(pg_cluster, catalog_db, tmp_path_factory):
    """One extraction of `zoo` as the CONNECT-only reader (no USAGE on schema `secret`)."""
    with dg.instance_for_test() as instance:
        yield run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path_factory.mktemp("zoo")),
            include='{"^zoo$": "*"}',
            user=catalog_db.reader_user,
            password=catalog_db.reader_password,
        )


@pytest.fixture(scope="module")
def zoo(zoo_run):
    """Entities by qualifiedName."""
    return {e["attributes"]["qualifiedName"]: e for e in zoo_run.all_entities("zoo")}


def of_type(zoo, type_name: str) -> list[dict]:
    return [e for e in zoo.values() if e["typeName"] == type_name]


def test_odd_objects_cost_nothing(zoo, zoo_run):
    """A handler-less foreign table, a schema the reader cannot use and a view sqlglot cannot
    parse are all extracted; the database does not fail."""
    assert zoo_run.runs["zoo"].success
    remote = zoo[f"{Z}/app/remote_rows"]
    assert remote["customAttributes"]["foreign_data_wrapper"] == "nohandler_fdw"
    assert remote["customAttributes"]["is_insertable_into"] == "NO"
    assert f"{Z}/secret/keys/k" in zoo and zoo[f"{Z}/secret/key_ids"]["typeName"] == "View"
    odd = f"{Z}/app/v_odd"
    process = next(e for e in of_type(zoo, "Process") if e["attributes"]["name"] == odd)
    assert [i["uniqueAttributes"]["qualifiedName"] for i in process["attributes"]["inputs"]] == [
        f"{Z}/app/customers"
    ]
    assert not [e for e in of_type(zoo, "ColumnProcess") if e["attributes"]["name"].startswith(odd)]
    lineage = next(
        ev.step_materialization_data.materialization.metadata
        for ev in zoo_run.runs["zoo"].get_asset_materialization_events()
        if ev.asset_key.path[-1] == "column_process"
    )
    assert lineage["views_without_column_lineage"].value == 1


def test_the_error_that_used_to_fail_the_database_is_permanent_and_named(pg_cluster):
    conn = pg_cluster.connect("zoo")
    try:
        with pytest.raises(psycopg2.Error) as info, conn.cursor() as cur:
            cur.execute("SELECT pg_relation_is_updatable('app.remote_rows'::regclass, false)")
    finally:
        conn.close()
    assert info.value.pgcode == "55000"
    assert not connection_lost(info.value, conn)  # not retried, not "the connection was lost"
    message = describe_query_error("tables", "zoo", info.value, conn)
    assert "has no handler" in message and "connection" not in message


def test_routines_match_pg_proc(zoo, pg_cluster):
    expected = pg_cluster.query(
        "SELECT n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes), p.prokind "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS ("
        " SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid"
        " AND d.deptype = 'e')",
        dbname="zoo",
    )
    procedures = of_type(zoo, "Procedure")
    assert len(procedures) == len(expected) == 6
    names = {e["attributes"]["qualifiedName"].removeprefix(f"{Z}/") for e in procedures}
    assert names == {
        "app/_procedures_/total(integer)",
        "app/_procedures_/total(integer, integer)",
        "app/_procedures_/total(numeric)",  # a procedure sharing the functions' name
        "app/_procedures_/archive",
        "app/_procedures_/sumsq",
        "app/_procedures_/touch",
    }
    extension_functions = pg_cluster.query(
        "SELECT count(*) FROM pg_depend WHERE classid = 'pg_proc'::regclass AND deptype = 'e'",
        dbname="zoo",
    )[0][0]
    assert extension_functions > 20  # pg_trgm's, all left out
    total = zoo[f"{Z}/app/_procedures_/total(integer)"]
    assert (
        total["attributes"]["name"] == "total" and total["attributes"]["definition"] == "SELECT a"
    )
    assert total["attributes"]["description"] == "The total of one"
    assert total["attributes"]["atlanSchema"]["uniqueAttributes"]["qualifiedName"] == f"{Z}/app"
    custom = total["customAttributes"]
    assert custom["kind"] == "function" and custom["return_type"] == "integer"
    assert custom["function_definition"].startswith("CREATE OR REPLACE FUNCTION app.total(a int")
    aggregate = zoo[f"{Z}/app/_procedures_/sumsq"]["customAttributes"]
    assert aggregate["kind"] == "aggregate"
    assert aggregate["function_definition"] == (
        "CREATE AGGREGATE app.sumsq(integer) (SFUNC = int4pl, STYPE = integer, INITCOND = '0')"
    )
    assert zoo[f"{Z}/app/_procedures_/total(numeric)"]["customAttributes"]["kind"] == "procedure"


def test_every_foreign_key_pair_is_a_link(zoo, pg_cluster):
    pairs = pg_cluster.query(
        "SELECT fn.nspname, fc.relname, fa.attname, tn.nspname, tc.relname, ta.attname "
        "FROM pg_constraint con CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(a, b) "
        "JOIN pg_class fc ON fc.oid = con.conrelid "
        "JOIN pg_namespace fn ON fn.oid = fc.relnamespace "
        "JOIN pg_attribute fa ON fa.attrelid = con.conrelid AND fa.attnum = k.a "
        "JOIN pg_class tc ON tc.oid = con.confrelid "
        "JOIN pg_namespace tn ON tn.oid = tc.relnamespace "
        "JOIN pg_attribute ta ON ta.attrelid = con.confrelid AND ta.attnum = k.b "
        "WHERE con.contype = 'f' AND con.conparentid = 0",
        dbname="zoo",
    )
    assert len(pairs) == 7  # 5 constraints, two of them composite
    links = {
        (
            e["attributes"]["qualifiedName"],
            e["attributes"]["foreignKeyFrom"]["uniqueAttributes"]["qualifiedName"],
        )
        for e in of_type(zoo, "Column")
        if "foreignKeyFrom" in e["attributes"]
    }
    expected = {(f"{Z}/{a}/{b}/{c}", f"{Z}/{d}/{e}/{f}") for a, b, c, d, e, f in pairs}
    assert links == expected
    # the other end lists them back
    back = defaultdict(set)
    for e in of_type(zoo, "Column"):
        for source in e["attributes"].get("foreignKeyTo", []):
            back[e["attributes"]["qualifiedName"]].add(source["uniqueAttributes"]["qualifiedName"])
    assert {(s, t) for t, sources in back.items() for s in sources} == expected
    assert back[f"{Z}/app/orders/id"] == {
        f"{Z}/app/orders/parent_order",
        f"{Z}/ledger/entries/order_id",
    }
    assert back[f"{Z}/app/events/at"] == {f"{Z}/app/event_notes/event_at"}  # partitioned target


def test_is_indexed_matches_pg_index(zoo, pg_cluster):
    indexed = {
        f"{Z}/{s}/{t}/{c}"
        for s, t, c in pg_cluster.query(
            "SELECT n.nspname, c.relname, a.attname FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey) "
            "WHERE n.nspname IN ('app', 'ledger', 'secret')",
            dbname="zoo",
        )
    }
    ours = {
        e["attributes"]["qualifiedName"]
        for e in of_type(zoo, "Column")
        if e["attributes"]["isIndexed"]
    }
    assert ours == indexed and f"{Z}/app/orders/amount" in ours  # the partial index's column


def test_constraints_indexes_triggers_policies_and_parents(zoo):
    orders = zoo[f"{Z}/app/orders"]["customAttributes"]
    constraints = {c["name"]: c for c in orders["constraints"]}
    assert constraints["orders_customer_fk"]["type"] == "FOREIGN KEY"
    assert constraints["orders_customer_fk"]["definition"] == (
        "FOREIGN KEY (region, customer_name) REFERENCES app.customers(region, name)"
    )
    assert constraints["orders_amount_check"]["type"] == "CHECK"
    indexes = {i["name"]: i for i in orders["indexes"]}
    assert indexes["orders_big_idx"]["partial"] and not indexes["orders_big_idx"]["unique"]
    assert indexes["orders_pkey"]["primary"] and indexes["orders_pkey"]["unique"]
    (trigger,) = orders["triggers"]
    assert (
        trigger["name"] == "orders_touch"
        and "EXECUTE FUNCTION app.touch()" in trigger["definition"]
    )
    (policy,) = orders["policies"]
    assert (policy["name"], policy["command"], policy["roles"]) == (
        "region_only",
        "SELECT",
        ["public"],
    )
    assert policy["using"] == "region = CURRENT_USER" and orders["row_security"] == "YES"
    audit = zoo[f"{Z}/app/audit_log"]["customAttributes"]
    assert audit["inherits_from"] == [f"{Z}/app/base_log"]


def test_view_lineage_is_exactly_pg_depend(zoo, pg_cluster):
    rows = pg_cluster.query(
        "SELECT vn.nspname, v.relname, sn.nspname, s.relname, a.attname "
        "FROM pg_rewrite rw JOIN pg_class v ON v.oid = rw.ev_class "
        "JOIN pg_namespace vn ON vn.oid = v.relnamespace "
        "JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid "
        " AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rw.ev_class "
        "JOIN pg_class s ON s.oid = d.refobjid JOIN pg_namespace sn ON sn.oid = s.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "WHERE v.relkind IN ('v', 'm') AND vn.nspname IN ('app', 'secret')",
        dbname="zoo",
    )
    relations, columns = defaultdict(set), defaultdict(set)
    for vs, v, ss, s, col in rows:
        relations[f"{Z}/{vs}/{v}"].add(f"{Z}/{ss}/{s}")
        if col is not None:
            columns[f"{Z}/{vs}/{v}"].add(f"{Z}/{ss}/{s}/{col}")
    processes = {e["attributes"]["name"]: e for e in of_type(zoo, "Process")}
    assert set(processes) == set(relations) and len(processes) == 12
    for view, process in processes.items():
        inputs = {i["uniqueAttributes"]["qualifiedName"] for i in process["attributes"]["inputs"]}
        assert inputs == relations[view], view
        assert process["attributes"]["outputs"][0]["uniqueAttributes"]["qualifiedName"] == view
    edges = {}
    for e in of_type(zoo, "ColumnProcess"):
        a = e["attributes"]
        view = a["name"].rsplit("/", 1)[0]
        sources = {i["uniqueAttributes"]["qualifiedName"] for i in a["inputs"]}
        assert sources <= columns[view], a["name"]  # only columns pg_depend says the view reads
        assert (
            a["process"]["uniqueAttributes"]["qualifiedName"]
            == processes[view]["attributes"]["qualifiedName"]
        )
        edges[a["name"].removeprefix(f"{Z}/app/")] = {s.removeprefix(f"{Z}/") for s in sources}
    assert edges["v_join/order_id"] == {"app/orders/id"}
    assert edges["v_join/customer"] == {"app/customers/name"}
    assert edges["v_expr/doubled"] == {"app/orders/amount"}
    assert edges["v_expr/region_uc"] == {"app/orders/region"}
    assert edges["v_cte/big_id"] == {"app/orders/id"}
    assert edges["v_sub/n"] == {"app/customers/name"} and "v_sub/total" not in edges  # count(*)
    assert edges["v_union/region"] == {"app/customers/region", "app/orders/region"}
    assert edges["v_star/name"] == {"app/customers/name"}
    assert edges["v_cols/a"] == {"app/customers/id"}  # CREATE VIEW v_cols (a, b) AS SELECT id, name
    assert edges["v_cols/b"] == {"app/customers/name"}
    assert edges["v_over_view/customer"] == {"app/v_join/customer"}  # a view over a view
    assert edges["v_ledger/entry_id"] == {"ledger/entries/id"}  # across schemas
    assert edges["mv_totals/total"] == {"app/orders/amount"}
    assert len(edges) == 22


def test_new_entities_parse_as_pyatlan_assets(zoo):
    from pyatlan.model.assets import Asset

    for type_name in ("Procedure", "Process", "ColumnProcess", "Column"):
        for e in of_type(zoo, type_name)[:20]:
            asset = Asset._convert_to_real_type_(json.loads(json.dumps(e)))
            assert type(asset).__name__ == type_name
            assert asset.qualified_name == e["attributes"]["qualifiedName"]


def test_partitioned_sizes_sum_their_leaves_as_tables_count_themselves(zoo):
    events = zoo[f"{Z}/app/events"]["attributes"]["sizeBytes"]
    leaf = zoo[f"{Z}/app/events_2025"]["attributes"]["sizeBytes"]
    assert events == leaf > 0  # the leaf's primary-key index counts for the partitioned table


def test_exact_sizes_on_request(pg_cluster, catalog_db, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^zoo$": ["^app$"]}',
            postgres_kw={"exact_sizes": True},
        )
    sizes = {
        e["attributes"]["name"]: e["attributes"].get("sizeBytes")
        for e in run.all_entities("zoo")
        if e["typeName"] in ("Table", "TablePartition", "MaterialisedView")
    }
    exact = dict(
        pg_cluster.query(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relnamespace = 'app'::regnamespace AND relkind IN ('r', 'm')",
            dbname="zoo",
        )
    )
    for name, size in exact.items():
        assert sizes[name] == size, name
    assert sizes["events"] == exact["events_2025"]
