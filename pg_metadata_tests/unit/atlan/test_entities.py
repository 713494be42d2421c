"""Entity mapping: golden files per entity kind, plus the record-shape rules of the reference.

Goldens live in ``pg_metadata_tests/golden/<kind>.json`` (a list, in case order) and were
reviewed by hand against section 4 of the reference spec. Regenerate with
``PG_METADATA_UPDATE_GOLDEN=1`` only after an intended change, then review the diff.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pg_metadata.atlan import columns as COLS
from pg_metadata.atlan import entities as E
from pg_metadata.atlan import lineage as L
from pg_metadata.atlan import validation as V
from pg_metadata.atlan.procedures import procedure_entity
from pg_metadata.catalog.datasets import COLUMNS, TABLES
from pg_metadata.errors import ConfigError

from .catalog_rows import (
    COLUMN_ROWS,
    CTX,
    DATABASE_ROWS,
    LINEAGE_ROWS,
    MATERIALISED_VIEW_ROWS,
    PARTITION_ROWS,
    PROCEDURE_ROWS,
    SCHEMA_ROWS,
    TABLE_ROWS,
    VIEW_DEFINITIONS,
    VIEW_ROWS,
    raw,
)
from .golden import as_written, check_golden

C = "default/postgres/1717000000"
SYNC = {
    "tenantId": "default",
    "lastSyncWorkflowName": "<wf>",
    "lastSyncRun": "<run>",
    "lastSyncRunAt": 1717000123456,
    "connectorName": "postgres",
}
RELATION_ROWS = {**TABLE_ROWS, **PARTITION_ROWS, **VIEW_ROWS, **MATERIALISED_VIEW_ROWS}


def build(kind: str) -> list[dict[str, Any]]:
    """Entities of one golden kind, in case order, as they read back from the output files."""
    if kind == "database":
        items = [E.database_entity(r, n, CTX) for r, n in DATABASE_ROWS.values()]
    elif kind == "schema":
        items = [E.schema_entity(r, CTX) for r in SCHEMA_ROWS.values()]
    elif kind == "column":
        items = [COLS.column_entity(r, CTX) for r in COLUMN_ROWS.values()]
    elif kind == "procedure":
        items = [procedure_entity(r, CTX) for r in PROCEDURE_ROWS.values()]
    elif kind in ("process", "column_process"):
        rows = list(LINEAGE_ROWS.values())
        processes, edges, _ = L.lineage_results(rows, VIEW_DEFINITIONS, CTX)
        items = processes if kind == "process" else list(L.column_processes(edges, CTX))
    else:
        rows = {
            "table": TABLE_ROWS,
            "table_partition": PARTITION_ROWS,
            "view": VIEW_ROWS,
            "materialised_view": MATERIALISED_VIEW_ROWS,
        }[kind]
        items = [E.relation_entity(r, CTX) for r in rows.values()]
    return as_written(items)


KINDS = {
    "database": E.DATABASE,
    "schema": E.SCHEMA,
    "table": E.TABLE,
    "table_partition": E.TABLE_PARTITION,
    "view": E.VIEW,
    "materialised_view": E.MATERIALISED_VIEW,
    "column": E.COLUMN,
    "procedure": E.PROCEDURE,
    "process": E.PROCESS,
    "column_process": E.COLUMN_PROCESS,
}
ALL = {kind: build(kind) for kind in KINDS}


def by_name(kind: str, name: str) -> dict[str, Any]:
    """The single entity of a kind with the given name."""
    (found,) = [e for e in ALL[kind] if e["attributes"]["name"] == name]
    return found


def refs(value: Any, key: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every relationship reference (a dict with uniqueAttributes) inside an attributes dict."""
    if isinstance(value, dict):
        if "uniqueAttributes" in value:
            yield key, value
        else:
            for k, v in value.items():
                yield from refs(v, k)


# --- goldens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_golden(kind: str) -> None:
    """Each entity kind matches its reviewed golden file exactly (values and JSON types)."""
    check_golden(kind, ALL[kind])


@pytest.mark.parametrize("kind", list(KINDS))
def test_golden_kind_has_expected_type_name(kind: str) -> None:
    assert ALL[kind]
    assert {e["typeName"] for e in ALL[kind]} == {KINDS[kind]}


def test_relation_entities_selects_one_type_name() -> None:
    rows = list(RELATION_ROWS.values())
    names = {
        t: [e["attributes"]["name"] for e in E.relation_entities(rows, CTX, t)]
        for t in E.RELATION_TYPES
    }
    assert names == {
        "Table": ["customers", "staging_events", "orders", "remote_orders"],
        "TablePartition": ["orders_2023", "orders_2024", "orders_2024_eu", "orders_2022"],
        "View": ["order_totals"],
        "MaterialisedView": ["daily_revenue"],
    }


# --- record shape (section 4.1 / 4.3) --------------------------------------------------------

EVERY = [(k, e) for k, items in ALL.items() for e in items]
EVERY_IDS = [f"{k}:{e['attributes']['qualifiedName'].removeprefix(C)}" for k, e in EVERY]


@pytest.mark.parametrize(("kind", "ent"), EVERY, ids=EVERY_IDS)
def test_record_shape_and_common_attributes(kind: str, ent: dict[str, Any]) -> None:
    assert list(ent) == ["typeName", "status", "attributes", "customAttributes"]
    assert ent["status"] == "ACTIVE"
    attrs = ent["attributes"]
    assert attrs["connectionQualifiedName"] == C
    assert attrs["connectionName"] == "prod-pg"
    assert attrs["qualifiedName"].startswith(C + "/")
    assert {k: attrs[k] for k in SYNC} == SYNC
    assert "guid" not in ent and "guid" not in attrs


@pytest.mark.parametrize(("kind", "ent"), EVERY, ids=EVERY_IDS)
def test_nulls_dropped_except_keep_null(kind: str, ent: dict[str, Any]) -> None:
    assert None not in ent["attributes"].values()
    nulls = {k for k, v in ent["customAttributes"].items() if v is None}
    assert nulls <= E.KEEP_NULL


@pytest.mark.parametrize(("kind", "ent"), EVERY, ids=EVERY_IDS)
def test_relationship_reference_shape(kind: str, ent: dict[str, Any]) -> None:
    for key, ref in refs(ent["attributes"]):
        expected_keys = ["typeName", "uniqueAttributes"]
        if key != "parentTable":
            expected_keys.insert(1, "attributes")
            assert ref["attributes"] == {}
        assert list(ref) == expected_keys
        assert list(ref["uniqueAttributes"]) == ["qualifiedName"]


def test_no_dangling_references() -> None:
    """Every reference resolves to an entity of the same run with the referenced typeName."""
    produced = {(e["typeName"], e["attributes"]["qualifiedName"]) for _, e in EVERY}
    seen = 0
    for _, ent in EVERY:
        for _, ref in refs(ent["attributes"]):
            assert (ref["typeName"], ref["uniqueAttributes"]["qualifiedName"]) in produced
            seen += 1
    assert seen >= 20


# --- relations (section 4.4) -----------------------------------------------------------------


def test_table_keeps_part_key_nulls_and_empty_external_location() -> None:
    attrs = by_name("table", "customers")["attributes"]
    custom = by_name("table", "customers")["customAttributes"]
    assert attrs["description"] == "Customer master data"
    assert attrs["isPartitioned"] is False
    assert attrs["externalLocation"] == attrs["externalLocationFormat"] == ""
    assert attrs["atlanSchema"]["uniqueAttributes"] == {"qualifiedName": f"{C}/shop/sales"}
    for key in ("engine", "number_columns_in_part_key", "columns_participating_in_part_key"):
        assert key in custom and custom[key] is None


def test_partitioned_parent() -> None:
    ent = by_name("table", "orders")
    assert ent["attributes"]["isPartitioned"] is True
    assert ent["attributes"]["partitionStrategy"] == "r"
    assert ent["attributes"]["partitionCount"] == 2
    assert ent["customAttributes"]["number_columns_in_part_key"] == 1.0
    assert isinstance(ent["customAttributes"]["number_columns_in_part_key"], float)


def test_first_level_partition_references_parent_table_without_attributes() -> None:
    attrs = by_name("table_partition", "orders_2023")["attributes"]
    assert attrs["parentTable"] == {
        "typeName": "Table",
        "uniqueAttributes": {"qualifiedName": f"{C}/shop/sales/orders"},
    }
    assert attrs["tableName"] == "orders"
    assert attrs["tableQualifiedName"] == f"{C}/shop/sales/orders"
    assert attrs["constraint"].startswith("FOR VALUES FROM")
    assert "atlanSchema" not in attrs
    assert "parentTablePartition" not in attrs
    assert attrs["qualifiedName"] == f"{C}/shop/sales/orders_2023"  # flat, not nested


def test_sub_partition_references_parent_partition() -> None:
    attrs = by_name("table_partition", "orders_2024_eu")["attributes"]
    assert attrs["parentTablePartition"] == {
        "typeName": "TablePartition",
        "attributes": {},
        "uniqueAttributes": {"qualifiedName": f"{C}/shop/sales/orders_2024"},
    }
    assert "parentTable" not in attrs
    assert "atlanSchema" not in attrs


def test_partition_of_unselected_parent_falls_back_to_schema() -> None:
    attrs = by_name("table_partition", "orders_2022")["attributes"]
    assert attrs["atlanSchema"]["uniqueAttributes"] == {"qualifiedName": f"{C}/shop/archive"}
    for key in ("parentTable", "parentTablePartition", "tableName", "tableQualifiedName"):
        assert key not in attrs
    assert "legacy" not in str(attrs)


def test_view_definition_and_no_table_only_attributes() -> None:
    attrs = by_name("view", "order_totals")["attributes"]
    # Atlan's form: the bare view name, pg_get_viewdef's text as pg_views shows it
    assert attrs["definition"].startswith("CREATE OR REPLACE VIEW order_totals AS  SELECT")
    for key in ("isPartitioned", "externalLocation", "rowCount"):
        assert key not in attrs
    assert by_name("view", "order_totals")["customAttributes"]["is_insertable_into"] == "NO"


def test_materialized_view_keeps_null_is_insertable_into_and_is_typed() -> None:
    ent = by_name("materialised_view", "daily_revenue")
    assert ent["attributes"]["definition"].startswith("CREATE MATERIALIZED VIEW daily_revenue AS ")
    for key in ("is_insertable_into", "is_typed"):  # information_schema does not list MVs
        assert key in ent["customAttributes"] and ent["customAttributes"][key] is None


def test_odd_view_names_stay_valid_sql_in_the_definition() -> None:
    row = {**VIEW_ROWS["view"], "table_name": 'Odd "v"', "sql_name": '"Odd ""v"""'}
    definition = E.relation_entity(row, CTX)["attributes"]["definition"]
    assert definition.startswith('CREATE OR REPLACE VIEW "Odd ""v""" AS ')


def test_view_without_definition_text_has_no_definition() -> None:
    """The reference app renders `... AS None`; we omit the attribute instead (8.5 #9)."""
    row = {**VIEW_ROWS["view"], "view_definition": None}
    attrs = E.relation_entity(row, CTX)["attributes"]
    assert "definition" not in attrs
    assert "None" not in str(attrs)


def test_foreign_table_is_a_table_with_server_details() -> None:
    ent = by_name("table", "remote_orders")
    assert ent["customAttributes"]["table_type"] == "FOREIGN TABLE"
    assert ent["customAttributes"]["foreign_server"] == "legacy_srv"
    assert ent["customAttributes"]["foreign_data_wrapper"] == "postgres_fdw"
    assert "rowCount" not in ent["attributes"] and "sizeBytes" not in ent["attributes"]


def test_unlogged_persistence_is_reported() -> None:
    assert by_name("table", "staging_events")["customAttributes"]["persistence"] == "UNLOGGED"
    assert "persistence" not in by_name("table", "customers")["customAttributes"]


# --- columns ---------------------------------------------------------------------------------

PARENT_KEYS = {"table", "view", "materialisedView", "tablePartition"}


@pytest.mark.parametrize(
    ("case", "ref_key", "name_key", "parent_type"),
    [
        ("serial_pk_int4", "table", "tableName", "Table"),
        ("partition_key_column", "table", "tableName", "Table"),
        ("column_of_partition", "tablePartition", "tableName", "TablePartition"),
        ("column_of_view", "view", "viewName", "View"),
        ("column_of_materialized_view", "materialisedView", "viewName", "MaterialisedView"),
    ],
)
def test_column_has_exactly_one_parent(
    case: str, ref_key: str, name_key: str, parent_type: str
) -> None:
    row = COLUMN_ROWS[case]
    attrs = as_written(COLS.column_entity(row, CTX))["attributes"]
    assert PARENT_KEYS & set(attrs) == {ref_key}
    parent_qn = f"{C}/shop/sales/{row['table_name']}"
    assert attrs[ref_key]["typeName"] == parent_type
    assert attrs[ref_key]["uniqueAttributes"] == {"qualifiedName": parent_qn}
    assert attrs[name_key] == row["table_name"]
    assert attrs[name_key.replace("Name", "QualifiedName")] == parent_qn
    other = "viewName" if name_key == "tableName" else "tableName"
    assert other not in attrs
    assert attrs["qualifiedName"] == f"{parent_qn}/{row['column_name']}"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("serial_pk_int4", "YES"),
        ("identity_column", "YES"),
        ("numeric_12_2_with_default", "NO"),
        ("generated_column", "NO"),
    ],
)
def test_column_auto_increment(case: str, expected: str) -> None:
    custom = COLS.column_entity(COLUMN_ROWS[case], CTX)["customAttributes"]
    assert custom["is_auto_increment"] == expected


def test_partition_key_column() -> None:
    attrs = by_name("column", "ordered_at")["attributes"]
    assert attrs["isPartition"] is True
    assert attrs["partitionOrder"] == 1
    others = [e for e in ALL["column"] if e["attributes"]["name"] != "ordered_at"]
    assert all(e["attributes"]["isPartition"] is False for e in others)
    assert all("partitionOrder" not in e["attributes"] for e in others)


def test_column_real_types_not_reference_placeholders() -> None:
    """Real precision/scale/length instead of the reference app's 0 / 0.0 / bit width."""
    varchar = COLS.column_entity(COLUMN_ROWS["varchar_255_unique"], CTX)["attributes"]
    assert varchar["maxLength"] == 255
    assert varchar["rawDataTypeDefinition"] == "character varying(255)"
    numeric = COLS.column_entity(COLUMN_ROWS["numeric_12_2_with_default"], CTX)["attributes"]
    assert (numeric["precision"], numeric["numericScale"], numeric["defaultValue"]) == (
        12,
        2.0,
        "0",
    )
    assert isinstance(numeric["numericScale"], float)


def test_identity_cycle_null_is_kept_for_non_identity_columns() -> None:
    custom = by_name("column", "email")["customAttributes"]
    assert "identity_cycle" in custom and custom["identity_cycle"] is None
    assert by_name("column", "event_id")["customAttributes"]["identity_cycle"] == "NO"


# --- names and qualifiedNames ----------------------------------------------------------------


def _table(schema: str, name: str, database: str = "shop") -> dict[str, Any]:
    return raw(
        TABLES,
        database_name=database,
        schema_name=schema,
        table_oid=1,
        table_name=name,
        sql_name="x",
        table_kind="r",
        table_type="TABLE",
        column_count=1,
        is_partition=False,
        is_partitioned=False,
    )


def test_names_are_verbatim_in_qualified_names_as_atlan_builds_them() -> None:
    a = E.relation_entity(_table("a/b", "c"), CTX)["attributes"]
    b = E.relation_entity(_table("a", "b/c"), CTX)["attributes"]
    pct = E.relation_entity(_table("s", "50%"), CTX)["attributes"]
    # pyatlan's Table.creator: f"{schema_qualified_name}/{name}", no escaping
    assert a["qualifiedName"] == b["qualifiedName"] == f"{C}/shop/a/b/c"
    assert pct["qualifiedName"] == f"{C}/shop/s/50%"
    assert (a["schemaName"], a["name"]) == ("a/b", "c")
    assert (b["schemaName"], b["name"]) == ("a", "b/c")


def test_a_genuine_collision_is_reported_naming_both_objects() -> None:
    entities = [
        E.relation_entity(_table("a/b", "c"), CTX),
        E.relation_entity(_table("a", "b/c"), CTX),
    ]
    found = V.scan(lambda: entities)
    assert found.duplicates.problems == 1
    (example,) = found.duplicates.examples
    assert example.startswith(f"{C}/shop/a/b/c is the name of ")
    assert 'Table "shop"."a/b"."c"' in example and 'Table "shop"."a"."b/c"' in example


def test_odd_names_stay_verbatim() -> None:
    db, schema, table, column = 'Odd "DB".name', "My Schema", 'Ünïcödé "t".x', "naïve col.1"
    rel = E.relation_entity(_table(schema, table, db), CTX)["attributes"]
    assert rel["name"] == table
    assert rel["qualifiedName"] == f"{C}/{db}/{schema}/{table}"
    assert rel["databaseQualifiedName"] == f"{C}/{db}"
    col_row = raw(
        COLUMNS,
        COLUMN_ROWS["varchar_255_unique"],
        database_name=db,
        schema_name=schema,
        table_name=table,
        column_name=column,
    )
    col = COLS.column_entity(col_row, CTX)["attributes"]
    assert col["name"] == column
    assert col["qualifiedName"] == f"{C}/{db}/{schema}/{table}/{column}"


# --- connection and context ------------------------------------------------------------------


@pytest.mark.parametrize(
    "qn", ["postgres/1", "a//b", "", "default/postgres/1/extra", "/postgres/1", "default/postgres/"]
)
def test_bad_connection_qualified_name(qn: str) -> None:
    with pytest.raises(ConfigError, match="ATLAN_CONNECTION_QUALIFIED_NAME"):
        E.validate_connection_qualified_name(qn)


def test_good_connection_qualified_name_and_connector() -> None:
    E.validate_connection_qualified_name(C)
    assert CTX.connector_name == "postgres"


def test_context_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="ATLAN_CONNECTION_QUALIFIED_NAME"):
        E.AtlanContext(connection_qualified_name="postgres/1", connection_name="x")
    with pytest.raises(ConfigError, match="ATLAN_CONNECTION_NAME"):
        E.AtlanContext(connection_qualified_name=C, connection_name="")


# --- descriptions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        (" \n\t ", None),
        ("<p></p>", None),
        ("Customer orders", "Customer orders"),
        ("  padded  ", "padded"),
        ("Customer <b>orders</b>", "Customer orders"),
        ('<a href="x">link</a> text', "link text"),
        ("line one\n\n  line\ttwo", "line one line two"),
        ("multi\nline <span\nclass='x'>tag</span>", "multi line tag"),
        ("café ünïcode", "café ünïcode"),
    ],
)
def test_clean_description(text: str | None, expected: str | None) -> None:
    assert E.clean_description(text) == expected


def test_clean_description_truncates_to_100000_characters() -> None:
    assert E.clean_description("a" * 100_000 + "TAIL") == "a" * 100_000
    assert E.clean_description("é" * 100_001) == "é" * 100_000


def test_clean_description_truncates_before_removing_tags() -> None:
    text = "x" * 99_990 + "<b>" + "y" * 20
    assert E.clean_description(text) == "x" * 99_990 + "y" * 7
