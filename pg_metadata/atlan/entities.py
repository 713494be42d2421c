"""Turn raw catalog rows into Atlan entities (plain dicts), following Atlan's record shape.

Record: ``{"typeName", "status": "ACTIVE", "attributes": {...}, "customAttributes": {...}}``;
relationships are references by qualifiedName. Null attributes are dropped, except the
customAttributes Atlan keeps as explicit nulls. Pure functions: no Dagster, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from pg_metadata.catalog.sources import validate_connection_qualified_name
from pg_metadata.errors import ConfigError

DATABASE, SCHEMA, TABLE, TABLE_PARTITION = "Database", "Schema", "Table", "TablePartition"
VIEW, MATERIALISED_VIEW, COLUMN = "View", "MaterialisedView", "Column"
PROCEDURE, PROCESS, COLUMN_PROCESS = "Procedure", "Process", "ColumnProcess"
RELATION_TYPES = (TABLE, TABLE_PARTITION, VIEW, MATERIALISED_VIEW)
VIEW_OR_MV = "View or MaterialisedView"  # a row filter, not a typeName

# customAttributes that Atlan's serialiser keeps even when null
KEEP_NULL = frozenset(
    {
        "identity_cycle",
        "number_columns_in_part_key",
        "columns_participating_in_part_key",
        "engine",
        "is_insertable_into",
        "is_typed",
    }
)
MAX_DESCRIPTION = 100_000
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class AtlanContext:
    """Who and when: the Atlan connection the entities belong to, and the run producing them."""

    connection_qualified_name: str
    connection_name: str
    tenant_id: str = "default"
    workflow_name: str = "pg_metadata"
    run_id: str = ""
    run_at_ms: int = 0

    def __post_init__(self) -> None:
        validate_connection_qualified_name(self.connection_qualified_name)
        if not self.connection_name:
            raise ConfigError("connection name (ATLAN_CONNECTION_NAME) must not be empty")

    @property
    def connector_name(self) -> str:
        """The connector segment of the connection qualifiedName."""
        return self.connection_qualified_name.split("/")[1]

    def common(self, name: str, qualified_name: str) -> dict[str, Any]:
        """Attributes every entity carries."""
        return {
            "name": name,
            "qualifiedName": qualified_name,
            "connectionQualifiedName": self.connection_qualified_name,
            "connectionName": self.connection_name,
        }

    def sync(self) -> dict[str, Any]:
        """Run bookkeeping attributes every entity carries."""
        return {
            "tenantId": self.tenant_id,
            "lastSyncWorkflowName": self.workflow_name,
            "lastSyncRun": self.run_id,
            "lastSyncRunAt": self.run_at_ms,
            "connectorName": self.connector_name,
        }


def clean_description(text: str | None) -> str | None:
    """Atlan's cleaning: first 100,000 chars, tags removed, whitespace collapsed, trimmed."""
    if text is None:
        return None
    cleaned = _SPACE.sub(" ", _TAG.sub("", text[:MAX_DESCRIPTION])).strip()
    return cleaned or None


def ref(type_name: str, qualified_name: str, with_attributes: bool = True) -> dict[str, Any]:
    """A relationship reference by qualifiedName."""
    out: dict[str, Any] = {"typeName": type_name}
    if with_attributes:
        out["attributes"] = {}
    out["uniqueAttributes"] = {"qualifiedName": qualified_name}
    return out


def entity(type_name: str, attributes: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
    """Assemble a record, dropping nulls the way Atlan's serialiser does."""
    return {
        "typeName": type_name,
        "status": "ACTIVE",
        "attributes": {k: v for k, v in attributes.items() if v is not None},
        "customAttributes": {k: v for k, v in custom.items() if v is not None or k in KEEP_NULL},
    }


def yes_no(value: bool | None) -> str | None:
    """Booleans as information_schema's YES/NO."""
    return None if value is None else ("YES" if value else "NO")


class QualifiedNames:
    """qualifiedName builders: `<connection>/<db>/<schema>/<relation>/<column>`, names verbatim.

    Exactly as Atlan's crawler and pyatlan's creators build them, so our entities and theirs
    name the same asset the same way. Names holding `/` can therefore collide (schema `a/b` +
    table `c` and schema `a` + table `b/c`); the uniqueness check names both objects.
    """

    def __init__(self, connection_qualified_name: str) -> None:
        self.connection = connection_qualified_name

    def database(self, db: str) -> str:
        return f"{self.connection}/{db}"

    def schema(self, db: str, schema: str) -> str:
        return f"{self.connection}/{db}/{schema}"

    def relation(self, db: str, schema: str, relation: str) -> str:
        return f"{self.connection}/{db}/{schema}/{relation}"

    def column(self, db: str, schema: str, relation: str, column: str) -> str:
        return f"{self.connection}/{db}/{schema}/{relation}/{column}"


def relation_type(row: dict[str, Any]) -> str:
    """Atlan typeName of a raw `tables` row."""
    if row["is_partition"]:
        return TABLE_PARTITION
    kind = row["table_kind"]
    if kind == "v":
        return VIEW
    if kind == "m":
        return MATERIALISED_VIEW
    return TABLE


def column_parent_type(table_kind: str, table_is_partition: bool) -> str:
    """Atlan typeName of the relation owning a column."""
    if table_is_partition:
        return TABLE_PARTITION
    return {"v": VIEW, "m": MATERIALISED_VIEW}.get(table_kind, TABLE)


def database_entity(row: dict[str, Any], schema_count: int, ctx: AtlanContext) -> dict[str, Any]:
    """A Database entity from a raw `databases` row."""
    qn = QualifiedNames(ctx.connection_qualified_name)
    name = row["database_name"]
    attrs = ctx.common(name, qn.database(name))
    attrs["description"] = clean_description(row.get("comment"))
    attrs["schemaCount"] = schema_count
    attrs.update(ctx.sync())
    custom = {
        "owner": row.get("owner"),
        "encoding": row.get("encoding"),
        "collation": row.get("collation"),
        "ctype": row.get("ctype"),
        "size_bytes": row.get("size_bytes"),
    }
    return entity(DATABASE, attrs, custom)


def schema_entity(row: dict[str, Any], ctx: AtlanContext) -> dict[str, Any]:
    """A Schema entity from a raw `schemas` row."""
    qn = QualifiedNames(ctx.connection_qualified_name)
    db, name = row["database_name"], row["schema_name"]
    attrs = ctx.common(name, qn.schema(db, name))
    attrs.update(
        {
            "description": clean_description(row.get("comment")),
            "databaseName": db,
            "databaseQualifiedName": qn.database(db),
            "tableCount": row["table_count"],
            "viewsCount": row["views_count"],
            "database": ref(DATABASE, qn.database(db)),
        }
    )
    attrs.update(ctx.sync())
    return entity(SCHEMA, attrs, {"owner": row.get("owner")})


def relation_entity(row: dict[str, Any], ctx: AtlanContext) -> dict[str, Any]:
    """A Table, TablePartition, View or MaterialisedView entity from a raw `tables` row."""
    qn = QualifiedNames(ctx.connection_qualified_name)
    db, schema, name = row["database_name"], row["schema_name"], row["table_name"]
    type_name = relation_type(row)
    is_view = type_name in (VIEW, MATERIALISED_VIEW)
    schema_qn = qn.schema(db, schema)
    attrs = ctx.common(name, qn.relation(db, schema, name))
    attrs.update(
        {
            "description": clean_description(row.get("comment")),
            "databaseName": db,
            "databaseQualifiedName": qn.database(db),
            "schemaName": schema,
            "schemaQualifiedName": schema_qn,
        }
    )
    if is_view:
        definition = row.get("view_definition")
        if definition is not None:
            attrs["definition"] = view_definition(type_name, row["sql_name"], definition)
    attrs["columnCount"] = row["column_count"]
    attrs["rowCount"] = row.get("row_count")
    attrs["sizeBytes"] = row.get("size_bytes")
    if not is_view:
        partitioned = bool(row["is_partitioned"])
        attrs["isPartitioned"] = partitioned
        if partitioned:
            attrs["partitionStrategy"] = row.get("partition_strategy")
            attrs["partitionCount"] = row.get("partition_count")
        attrs["externalLocation"] = ""
        attrs["externalLocationFormat"] = ""
        attrs["externalLocationRegion"] = ""
    if type_name == TABLE_PARTITION:
        attrs["constraint"] = row.get("partition_bound")
        _partition_parent(attrs, row, qn)
    else:
        attrs["atlanSchema"] = ref(SCHEMA, schema_qn)
    attrs.update(ctx.sync())

    key_columns = row.get("partition_key_column_count")
    is_mv = type_name == MATERIALISED_VIEW
    custom = {
        "table_type": row["table_type"],
        # information_schema.tables, Atlan's source for these two, does not list MVs
        "is_insertable_into": None if is_mv else yes_no(row.get("is_insertable_into")),
        "is_typed": None if is_mv else yes_no(row.get("is_typed")),
        "self_referencing_col_name": "",
        "ref_generation": "",
        "engine": None,
        "number_columns_in_part_key": float(key_columns) if key_columns is not None else None,
        "columns_participating_in_part_key": _attnums(row.get("partition_key_attnums")),
        "partition_key": row.get("partition_key"),
        "owner": row.get("owner"),
        "persistence": {"u": "UNLOGGED"}.get(row.get("persistence") or ""),
        "foreign_server": row.get("foreign_server"),
        "foreign_data_wrapper": row.get("foreign_data_wrapper"),
        "foreign_options": row.get("foreign_options"),
        "row_security": yes_no(row.get("row_security")) if not is_view else None,
        "constraints": _json_list(row.get("constraints")),
        "indexes": _json_list(row.get("indexes")),
        "triggers": _json_list(row.get("triggers")),
        "policies": _json_list(row.get("policies")),
    }
    parents = _json_list(row.get("inherits"))
    if parents:
        db = row["database_name"]
        custom["inherits_from"] = [qn.relation(db, s, n) for s, n in parents]
    return entity(type_name, attrs, custom)


def view_definition(type_name: str, sql_name: str, select: str) -> str:
    """Atlan's form: `CREATE OR REPLACE VIEW <name> AS <pg_get_viewdef>` (MVs: CREATE
    MATERIALIZED VIEW), the name unqualified as Atlan writes it (its lineage step resolves it
    with schemaName) but quoted where SQL needs quotes, so odd names stay valid SQL."""
    verb = (
        "CREATE MATERIALIZED VIEW" if type_name == MATERIALISED_VIEW else "CREATE OR REPLACE VIEW"
    )
    return f"{verb} {sql_name} AS {select}"


def _attnums(text: str | None) -> float | str | None:
    """The partition key's attribute numbers: a JSON number for one column (Atlan casts it to
    a float), the space-separated list for several (no number holds them)."""
    if text is None:
        return None
    return float(text) if text.strip().isdigit() else text


def _json_list(text: str | None) -> list[Any] | None:
    return orjson.loads(text) if text else None


def _partition_parent(attrs: dict[str, Any], row: dict[str, Any], qn: QualifiedNames) -> None:
    """Link a partition to its direct parent, or to its schema if the parent is not extracted."""
    db = row["database_name"]
    if row.get("root_selected"):
        attrs["tableName"] = row["root_name"]
        attrs["tableQualifiedName"] = qn.relation(db, row["root_schema"], row["root_name"])
    if row.get("parent_selected"):
        parent_qn = qn.relation(db, row["parent_schema"], row["parent_name"])
        if row.get("parent_is_partition"):
            attrs["parentTablePartition"] = ref(TABLE_PARTITION, parent_qn)
        else:
            attrs["parentTable"] = ref(TABLE, parent_qn, with_attributes=False)
    else:
        attrs["atlanSchema"] = ref(SCHEMA, qn.schema(db, row["schema_name"]))


def relation_entities(
    rows: Iterable[dict[str, Any]], ctx: AtlanContext, type_name: str
) -> Iterator[dict[str, Any]]:
    """Entities of one relation typeName from raw `tables` rows."""
    for row in rows:
        if relation_type(row) == type_name:
            yield relation_entity(row, ctx)


_NAMES = ("database_name", "schema_name", "table_name")
_RELATION_SOURCES = {
    "name": ["table_name"],
    "qualifiedName": list(_NAMES),
    "description": ["comment"],
    "columnCount": ["column_count"],
    "rowCount": ["row_count"],
    "sizeBytes": ["size_bytes"],
    "definition": ["view_definition", "sql_name"],
    "isPartitioned": ["is_partitioned"],
    "partitionStrategy": ["partition_strategy"],
    "partitionCount": ["partition_count"],
    "constraint": ["partition_bound"],
    "tableQualifiedName": ["database_name", "root_schema", "root_name"],
}
# Which raw columns each entity attribute is computed from (Dagster column lineage).
ATTRIBUTE_SOURCES: dict[str, dict[str, list[str]]] = {
    DATABASE: {
        "name": ["database_name"],
        "qualifiedName": ["database_name"],
        "description": ["comment"],
    },
    SCHEMA: {
        "name": ["schema_name"],
        "qualifiedName": ["database_name", "schema_name"],
        "description": ["comment"],
        "tableCount": ["table_count"],
        "viewsCount": ["views_count"],
    },
    **{t: _RELATION_SOURCES for t in RELATION_TYPES},
    COLUMN: {
        "name": ["column_name"],
        "qualifiedName": [*_NAMES, "column_name"],
        "description": ["comment"],
        "dataType": ["data_type"],
        "rawDataTypeDefinition": ["formatted_type"],
        "isNullable": ["is_nullable"],
        "isPrimary": ["is_primary"],
        "isForeign": ["is_foreign"],
        "isPartition": ["is_partition_key"],
        "partitionOrder": ["partition_order"],
        "precision": ["numeric_precision"],
        "numericScale": ["numeric_scale"],
        "maxLength": ["max_length"],
        "defaultValue": ["default_value"],
        "order": ["ordinal_position"],
        "isIndexed": ["is_indexed"],
    },
    PROCEDURE: {
        "name": ["procedure_name"],
        "qualifiedName": ["database_name", "schema_name", "procedure_name", "argument_types"],
        "description": ["comment"],
        "definition": ["body"],
        "sourceCreatedBy": ["owner"],
    },
    PROCESS: {
        "name": ["database_name", "schema_name", "view_name"],
        "inputs": ["sources"],
        "outputs": ["view_name", "view_kind"],
    },
    COLUMN_PROCESS: {
        "name": ["database_name", "schema_name", "view_name", "columns"],
        "inputs": ["used_columns"],
        "outputs": ["columns"],
    },
}
