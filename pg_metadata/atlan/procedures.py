"""Procedure entities: functions, procedures, aggregates and window functions, as Atlan writes them.

qualifiedName `<schema qn>/_procedures_/<name>` as pyatlan's Procedure.creator builds it. An
overloaded name (several pg_proc rows of one name in one schema, functions and procedures
alike) gets its argument types appended, `<name>(integer, text)`: deterministic, unique
(pg_proc is unique on schema, name and argument types) and the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pg_metadata.atlan.entities import (
    PROCEDURE,
    SCHEMA,
    AtlanContext,
    QualifiedNames,
    clean_description,
    entity,
    ref,
    yes_no,
)

KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
PROCEDURES_SEGMENT = "_procedures_"


def procedure_name_segment(row: dict[str, Any]) -> str:
    """The last qualifiedName segment: the name, or name(argument types) when overloaded."""
    name = row["procedure_name"]
    return f"{name}({row['argument_types']})" if row.get("is_overloaded") else name


def procedure_qualified_name(qn: QualifiedNames, row: dict[str, Any]) -> str:
    """`<schema qn>/_procedures_/<name or name(types)>`."""
    schema_qn = qn.schema(row["database_name"], row["schema_name"])
    return f"{schema_qn}/{PROCEDURES_SEGMENT}/{procedure_name_segment(row)}"


def procedure_entity(row: dict[str, Any], ctx: AtlanContext) -> dict[str, Any]:
    """A Procedure entity from one raw `procedures` row."""
    qn = QualifiedNames(ctx.connection_qualified_name)
    db, schema = row["database_name"], row["schema_name"]
    attrs = ctx.common(row["procedure_name"], procedure_qualified_name(qn, row))
    attrs.update(
        {
            "description": clean_description(row.get("comment")),
            "databaseName": db,
            "databaseQualifiedName": qn.database(db),
            "schemaName": schema,
            "schemaQualifiedName": qn.schema(db, schema),
            # Atlan's app: the body (prosrc), which its lineage step parses
            "definition": row.get("body"),
            "subType": "-1",
            "sourceCreatedBy": row.get("owner"),
        }
    )
    attrs.update(ctx.sync())
    attrs["atlanSchema"] = ref(SCHEMA, qn.schema(db, schema))
    custom = {
        "kind": KINDS.get(row.get("kind") or "", row.get("kind")),
        "language": row.get("language"),
        "arguments": row.get("arguments"),
        "argument_types": row.get("argument_types"),
        "return_type": row.get("return_type"),
        "volatility": VOLATILITY.get(row.get("volatility") or ""),
        "security_definer": yes_no(row.get("security_definer")),
        "function_definition": row.get("definition"),
    }
    return entity(PROCEDURE, attrs, custom)


def procedure_entities(
    rows: Iterable[dict[str, Any]], ctx: AtlanContext
) -> Iterator[dict[str, Any]]:
    """Procedure entities from raw `procedures` rows."""
    for row in rows:
        yield procedure_entity(row, ctx)
