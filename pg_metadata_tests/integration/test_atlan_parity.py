"""Parity with Atlan's own PostgreSQL app, on its own fixture catalog, field by field.

The catalog (`fixtures/atlan_parity/fixture_catalog.sql`) runs on a throwaway server of its own;
Atlan's entities for it (`transformed.jsonl`) are the referee. Every attribute of every Atlan
entity must be ours too, with the same value and JSON type, unless the difference is one listed
below with its reason; each listed difference must also be in the README's table of where we
differ from Atlan's app, and must actually occur (a stale entry fails too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pg_metadata.catalog.sources import Source
from pg_metadata.demo.throwaway import ThrowawayServer
from pg_metadata_tests.pipeline import run_source

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent.parent / "fixtures" / "atlan_parity"
README = Path(__file__).resolve().parents[2] / "README.md"
RUN_SPECIFIC = {"lastSyncWorkflowName", "lastSyncRun", "lastSyncRunAt"}

# (typeName, "attributes" | "customAttributes", key, kind) -> the README's reason.
# kind: "value" (both have it, values differ), "added" (ours only), "missing" (Atlan's only).
RELATIONS = ("Table", "TablePartition", "View", "MaterialisedView")
A, CA = "attributes", "customAttributes"


def _each(types: tuple[str, ...], section: str, key: str, kind: str, reason: str) -> dict:
    return {(t, section, key, kind): reason for t in types}


ALLOWED: dict[tuple[str, str, str, str], str] = {
    # values Atlan's app gets wrong or leaves out, filled in by us
    **_each(RELATIONS, A, "sizeBytes", "added", "real size; Atlan writes 0"),
    **_each(("Table", "TablePartition"), A, "description", "added", "the comment, cleaned"),
    **_each(("Database", "Schema"), A, "description", "added", "COMMENT ON DATABASE/SCHEMA"),
    ("Database", A, "schemaCount", "added"): "real count; Atlan writes 0",
    ("Column", A, "numericScale", "added"): "from the type modifier",
    ("Column", A, "isIndexed", "added"): "from pg_index",
    ("Column", A, "isPartition", "added"): "true on partition key columns",
    ("Column", A, "rawDataTypeDefinition", "added"): "format_type with modifiers",
    ("Column", A, "partitionOrder", "missing"): "only partition key columns have one",
    ("Column", A, "tableName", "missing"): "view columns name their view only",
    ("Column", A, "tableQualifiedName", "missing"): "view columns name their view only",
    ("Column", CA, "numeric_precision", "added"): "the declared precision",
    ("Column", CA, "is_unique", "added"): "in a unique constraint",
    # what Atlan's app template writes that the SDK's copy of its fixtures lacks
    **_each(RELATIONS, CA, "ref_generation", "added", "Atlan's template writes ''"),
    **_each(("Table", "TablePartition"), A, "externalLocation", "added", "Atlan writes ''"),
    **_each(("Table", "TablePartition"), A, "externalLocationFormat", "added", "ditto"),
    **_each(("Table", "TablePartition"), A, "externalLocationRegion", "added", "ditto"),
    ("Column", CA, "is_self_referencing", "added"): "Atlan's template writes NO",
    ("Column", CA, "type_name", "added"): "Atlan's template writes typname",
    ("Procedure", A, "subType", "added"): "Atlan's template writes -1",
    # JSON types: Atlan's template casts the partition key's attnums to a float
    ("Table", CA, "columns_participating_in_part_key", "value"): "a number, not a string",
    # the server: PostgreSQL 15's pg_get_viewdef qualifies column names, 17's does not
    **_each(("View", "MaterialisedView"), A, "definition", "value", "PG 15 vs 17 wording"),
    # more of the catalog
    **_each(("Database", "Schema", *RELATIONS), CA, "owner", "added", "owning role"),
    **{
        ("Database", CA, k, "added"): "pg_database"
        for k in ("encoding", "collation", "ctype", "size_bytes")
    },
    ("Table", CA, "partition_key", "added"): "pg_get_partkeydef",
    **_each(("Table", "MaterialisedView"), CA, "indexes", "added", "pg_get_indexdef"),
    ("Table", CA, "constraints", "added"): "pg_get_constraintdef",
    **_each(("Table", "TablePartition"), CA, "row_security", "added", "relrowsecurity"),
    **{
        ("Procedure", CA, k, "added"): "pg_proc"
        for k in (
            "kind",
            "language",
            "arguments",
            "argument_types",
            "return_type",
            "volatility",
            "security_definer",
            "function_definition",
        )
    },
}


def normalized(value: Any) -> Any:
    """Atlan's writer drops nulls and empty `attributes` of references; so do we, to compare."""
    if isinstance(value, dict):
        return {
            k: normalized(v)
            for k, v in value.items()
            if v is not None and not (k == "attributes" and v == {} and "uniqueAttributes" in value)
        }
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def differences(theirs: dict[str, Any], ours: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """Every (type, section, key, kind) in which two entities of one qualifiedName differ."""
    found = set()
    type_name = theirs["typeName"]
    if ours["typeName"] != type_name:
        found.add((type_name, "typeName", ours["typeName"], "value"))
    for section in ("attributes", "customAttributes"):
        a = {
            k: v for k, v in normalized(theirs.get(section) or {}).items() if k not in RUN_SPECIFIC
        }
        b = {k: v for k, v in normalized(ours.get(section) or {}).items() if k not in RUN_SPECIFIC}
        for key in a.keys() | b.keys():
            if key not in b:
                found.add((type_name, section, key, "missing"))
            elif key not in a:
                found.add((type_name, section, key, "added"))
            elif not same_json(a[key], b[key]):
                kind = "value" if same_head(key, a[key], b[key]) else "form"
                found.add((type_name, section, key, kind))
    return found


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by value (1 == 1.0), never a number and a string."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def same_head(key: str, a: Any, b: Any) -> bool:
    """For view definitions: the same `CREATE ... VIEW <name> AS ` (only the server's text
    after it may differ); other attributes have no head."""
    if key != "definition":
        return True
    head = str(a).split(" AS ", 1)[0] + " AS "
    return str(b).startswith(head)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Our entities for the fixture catalog, by qualifiedName."""
    with ThrowawayServer("parity_admin", "parity-secret") as server:
        import psycopg2

        conn = psycopg2.connect(
            host=server.host,
            port=server.port,
            user="parity_admin",
            password="parity-secret",
            dbname="postgres",
        )
        conn.autocommit = True
        conn.cursor().execute((HERE / "fixture_catalog.sql").read_text("utf-8"))
        conn.close()
        source = Source(
            "atlan_fixture",
            host=server.host,
            port=server.port,
            user="parity_admin",
            password="parity-secret",
            sslmode="disable",
            include='{"^postgres$": "*"}',
            connection_qualified_name="default/postgres/1745501106",
            connection_name="dev",
            retries=0,
        )
        target = tmp_path_factory.mktemp("parity")
        with dg.instance_for_test() as instance:
            run = run_source(source, instance, target=str(target))
            yield {e["attributes"]["qualifiedName"]: e for e in run.all_entities("postgres")}


def atlan_entities() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (HERE / "transformed.jsonl").read_text().splitlines()]


def test_every_atlan_entity_is_ours_with_only_the_listed_differences(extracted):
    found: dict[tuple[str, str, str, str], list[str]] = {}
    missing = []
    for theirs in atlan_entities():
        qn = theirs["attributes"]["qualifiedName"]
        ours = extracted.get(qn)
        if ours is None:
            missing.append(qn)
            continue
        for diff in differences(theirs, ours):
            found.setdefault(diff, []).append(qn)
    assert not missing, f"Atlan emits these, we do not: {missing}"
    unexplained = {d: qns[:3] for d, qns in found.items() if d not in ALLOWED}
    assert not unexplained, json.dumps({"|".join(k): v for k, v in unexplained.items()}, indent=1)
    stale = set(ALLOWED) - set(found)
    assert not stale, f"listed but not seen any more: {sorted(stale)}"


def test_every_allowed_difference_is_in_the_readme():
    text = README.read_text("utf-8")
    section = text[text.index("## Where we differ from Atlan's app") :]
    for type_name, _, key, _ in ALLOWED:
        assert f"`{key}`" in section, f"README does not explain {type_name}.{key}"
