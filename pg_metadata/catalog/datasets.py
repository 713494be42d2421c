"""The raw catalog datasets: which SQL file produces each and the exact Arrow schema of its rows."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pyarrow as pa

SQL_DIALECT = "postgres"
INCLUDE = "--@include "


@dataclass(frozen=True)
class Dataset:
    """One raw dataset: a SQL file (one set-based query) and its typed columns."""

    name: str
    description: str
    fields: tuple[tuple[str, pa.DataType, str], ...]

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema, with each field's description in its metadata."""
        return pa.schema([pa.field(n, t, metadata={"description": d}) for n, t, d in self.fields])

    @property
    def column_names(self) -> list[str]:
        """Column names in query order."""
        return [n for n, _, _ in self.fields]

    def sql(self, dialect: str = SQL_DIALECT) -> str:
        """The query of sql/<dialect>/<name>.sql, with `--@include` lines expanded."""
        return read_sql(dialect, self.name)


def read_sql(dialect: str, name: str) -> str:
    """A SQL file of the package; a line `--@include x` is replaced by the file x.sql."""
    path = resources.files("pg_metadata.catalog").joinpath("sql", dialect, f"{name}.sql")
    return "".join(
        read_sql(dialect, line.split()[1]) if line.startswith(INCLUDE) else line
        for line in path.read_text("utf-8").splitlines(keepends=True)
    )


S, I64, I32, B = pa.string(), pa.int64(), pa.int32(), pa.bool_()

DATABASES = Dataset(
    "databases",
    "Connectable, non-template databases of the server selected by the filters.",
    (
        ("database_oid", I64, "pg_database.oid"),
        ("database_name", S, "Database name, verbatim"),
        ("owner", S, "Owning role"),
        ("encoding", S, "Server encoding"),
        ("collation", S, "LC_COLLATE"),
        ("ctype", S, "LC_CTYPE"),
        ("comment", S, "COMMENT ON DATABASE"),
        ("size_bytes", I64, "pg_database_size"),
        ("connection_limit", I32, "datconnlimit (-1 = unlimited)"),
        ("server_version", S, "Server version string"),
    ),
)

SCHEMAS = Dataset(
    "schemas",
    "Schemas of one database selected by the filters, with relation counts.",
    (
        ("database_name", S, "Database name"),
        ("schema_oid", I64, "pg_namespace.oid"),
        ("schema_name", S, "Schema name, verbatim"),
        ("owner", S, "Owning role"),
        ("comment", S, "COMMENT ON SCHEMA"),
        ("table_count", I64, "Ordinary, partitioned and foreign tables, partitions included"),
        ("views_count", I64, "Views and materialized views"),
        ("partition_count", I64, "Partitions (of any depth)"),
    ),
)

TABLES = Dataset(
    "tables",
    "Every relation of one database: tables, partitions, views, materialized views, "
    "foreign tables.",
    (
        ("database_name", S, "Database name"),
        ("schema_name", S, "Schema name"),
        ("table_oid", I64, "pg_class.oid"),
        ("table_name", S, "Relation name, verbatim"),
        ("sql_name", S, "The name as SQL needs it (quote_ident)"),
        ("table_kind", S, "relkind: r, p, v, m, f"),
        ("table_type", S, "TABLE, PARTITIONED TABLE, FOREIGN TABLE, VIEW, MATERIALIZED VIEW"),
        ("owner", S, "Owning role"),
        ("comment", S, "COMMENT ON TABLE/VIEW"),
        ("column_count", I64, "Live columns (dropped columns excluded)"),
        ("row_count", I64, "Estimated rows (reltuples; partitioned: sum over leaves)"),
        (
            "size_bytes",
            I64,
            "Heap+TOAST+index bytes, estimated from relpages unless exact_sizes "
            "(partitioned: the same over its leaves)",
        ),
        ("persistence", S, "relpersistence: p permanent, u unlogged"),
        ("is_typed", B, "Created OF a composite type"),
        ("is_insertable_into", B, "Accepts INSERT"),
        ("is_partition", B, "Is a partition of another table"),
        ("is_partitioned", B, "Is a partitioned table"),
        ("partition_strategy", S, "r range, l list, h hash"),
        ("partition_key", S, "pg_get_partkeydef"),
        ("partition_key_column_count", I32, "Columns/expressions in the partition key"),
        ("partition_key_attnums", S, "Attribute numbers in the key (0 = expression)"),
        ("partition_count", I64, "Direct partitions of a partitioned table"),
        ("partition_bound", S, "FOR VALUES ... of a partition"),
        ("parent_schema", S, "Schema of the direct parent of a partition"),
        ("parent_name", S, "Direct parent of a partition"),
        ("parent_is_partition", B, "The parent is itself a partition"),
        ("parent_selected", B, "The parent is extracted in the same run"),
        ("partition_depth", I32, "1 for a direct partition of a root table, 2 below it, ..."),
        ("root_schema", S, "Schema of the root partitioned table"),
        ("root_name", S, "Root partitioned table"),
        ("root_selected", B, "The root is extracted in the same run"),
        ("view_definition", S, "pg_get_viewdef(oid), as pg_views shows it"),
        ("view_dependencies", S, "JSON [[schema, relation], ...] a view reads from"),
        ("foreign_server", S, "Foreign server of a foreign table"),
        ("foreign_data_wrapper", S, "Foreign-data wrapper of a foreign table"),
        ("foreign_options", S, "Foreign table options"),
        ("row_security", B, "Row-level security enabled"),
        ("constraints", S, "JSON [{name, type, definition}] of its constraints"),
        ("indexes", S, "JSON [{name, definition, unique, primary, partial}] of its indexes"),
        ("triggers", S, "JSON [{name, definition, enabled}] of its (non-internal) triggers"),
        ("policies", S, "JSON [{name, command, permissive, roles, using, with_check}]"),
        ("inherits", S, "JSON [[schema, table], ...] inheritance parents (not partitioning)"),
    ),
)

COLUMNS = Dataset(
    "columns",
    "Every live column of every extracted relation, one row per column.",
    (
        ("database_name", S, "Database name"),
        ("schema_name", S, "Schema name"),
        ("table_oid", I64, "pg_class.oid of the owning relation"),
        ("table_name", S, "Owning relation name"),
        ("table_kind", S, "relkind of the owning relation"),
        ("table_is_partition", B, "The owning relation is a partition"),
        ("column_name", S, "Column name, verbatim"),
        ("ordinal_position", I32, "attnum"),
        ("data_type", S, "pg_type.typname (int4, varchar, _text for text[])"),
        ("formatted_type", S, "format_type with modifiers: character varying(255)"),
        ("type_name", S, "format_type without modifiers: character varying"),
        ("type_category", S, "pg_type.typcategory"),
        ("is_nullable", B, "NOT attnotnull"),
        ("default_value", S, "Default expression"),
        ("generation_expression", S, "Expression of a generated column"),
        ("is_generated", B, "GENERATED ALWAYS AS (...) STORED"),
        ("is_identity", B, "Identity column"),
        ("identity_generation", S, "ALWAYS or BY DEFAULT"),
        ("identity_cycle", B, "Identity sequence cycles"),
        ("max_length", I64, "Declared character/bit length"),
        ("octet_length", I64, "Maximum octet length of character types"),
        ("numeric_precision", I32, "Declared or implied precision"),
        ("numeric_precision_radix", I32, "2 or 10"),
        ("numeric_scale", I32, "Declared or implied scale"),
        ("is_primary", B, "In the primary key"),
        ("is_foreign", B, "In a foreign key"),
        ("is_unique", B, "In a unique constraint"),
        ("is_indexed", B, "A key column of some index"),
        ("is_partition_key", B, "In the partition key of a partitioned table"),
        ("partition_order", I32, "Position in the partition key"),
        ("collation", S, "Non-default collation"),
        ("comment", S, "COMMENT ON COLUMN"),
    ),
)

PROCEDURES = Dataset(
    "procedures",
    "Functions, procedures, aggregates and window functions of one database (not those of "
    "extensions).",
    (
        ("database_name", S, "Database name"),
        ("schema_name", S, "Schema name"),
        ("procedure_oid", I64, "pg_proc.oid"),
        ("procedure_name", S, "proname, verbatim"),
        ("argument_types", S, "oidvectortypes(proargtypes): integer, text"),
        ("is_overloaded", B, "Another routine of the schema has the same name"),
        ("arguments", S, "pg_get_function_arguments"),
        ("return_type", S, "pg_get_function_result (not for procedures)"),
        ("kind", S, "prokind: f function, p procedure, a aggregate, w window"),
        ("language", S, "Language"),
        ("volatility", S, "provolatile: i, s, v"),
        ("security_definer", B, "SECURITY DEFINER"),
        ("owner", S, "Owning role"),
        ("body", S, "prosrc: the body (Atlan's definition)"),
        ("definition", S, "pg_get_functiondef, or a CREATE AGGREGATE rendering"),
        ("comment", S, "COMMENT ON FUNCTION/PROCEDURE"),
    ),
)

FOREIGN_KEYS = Dataset(
    "foreign_keys",
    "Column pairs of every foreign key touching a selected relation.",
    (
        ("database_name", S, "Database name"),
        ("constraint_name", S, "Constraint name"),
        ("position", I32, "Position of the pair in the key"),
        ("schema_name", S, "Schema of the referencing table"),
        ("table_name", S, "Referencing table"),
        ("column_name", S, "Referencing column"),
        ("selected", B, "The referencing table is extracted"),
        ("ref_schema_name", S, "Schema of the referenced table"),
        ("ref_table_name", S, "Referenced table"),
        ("ref_column_name", S, "Referenced column"),
        ("ref_selected", B, "The referenced table is extracted"),
    ),
)

LINEAGE = Dataset(
    "lineage",
    "What each view and materialized view reads, from pg_depend (one row per view).",
    (
        ("database_name", S, "Database name"),
        ("schema_name", S, "Schema of the view"),
        ("view_oid", I64, "pg_class.oid of the view"),
        ("view_name", S, "View name"),
        ("view_kind", S, "v view, m materialized view"),
        ("columns", S, "JSON [name, ...] of the view's columns in order"),
        ("sources", S, "JSON [[schema, relation, relkind, is_partition, selected], ...]"),
        ("used_columns", S, "JSON [[schema, relation, column], ...] the view reads"),
    ),
)

FINGERPRINT = Dataset(
    "fingerprint",
    "A cheap fingerprint of one database's selected catalog, to detect schema changes.",
    (
        ("relation_count", I64, "Relations selected"),
        ("fingerprint", S, "md5 over per-category counts and row-hash sums"),
    ),
)

VIEW_DEFINITIONS = Dataset(
    "view_definitions",
    "pg_get_viewdef of the selected views, in short transactions apart from the snapshot's.",
    (
        ("table_oid", I64, "pg_class.oid"),
        ("schema_name", S, "Schema"),
        ("relation_name", S, "View or materialized view"),
        ("view_definition", S, "pg_get_viewdef(oid); NULL for a foreign table, or when locked"),
        ("is_insertable_into", B, "pg_relation_is_updatable (views, foreign tables)"),
    ),
)

PER_DATABASE = (SCHEMAS, TABLES, COLUMNS, PROCEDURES, FOREIGN_KEYS, LINEAGE)
BY_NAME = {d.name: d for d in (DATABASES, *PER_DATABASE, FINGERPRINT)}
