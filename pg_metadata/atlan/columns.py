"""Column entities, built column-wise from raw `columns` record batches, with foreign-key links.

Foreign keys as Atlan models them (a list on one end, a single column on the other): the
referencing column's `foreignKeyFrom` is the column it references, and the referenced column's
`foreignKeyTo` lists the columns that reference it. Composite keys pair position by position.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pg_metadata.atlan.entities import (
    COLUMN,
    MATERIALISED_VIEW,
    TABLE,
    TABLE_PARTITION,
    VIEW,
    AtlanContext,
    QualifiedNames,
    clean_description,
    column_parent_type,
    ref,
)
from pg_metadata.catalog.datasets import COLUMNS


@dataclass
class ForeignKeys:
    """Foreign-key links by column qualifiedName, from raw `foreign_keys` rows.

    A link is kept only when both columns are extracted; the others are counted in `omitted`
    (their other end is filtered out), and so is a second key on the same referencing column
    (Atlan's foreignKeyFrom holds one column; the first constraint by name is kept).
    """

    references: dict[str, str] = field(default_factory=dict)
    referenced_by: dict[str, list[str]] = field(default_factory=dict)
    omitted: int = 0

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], ctx: AtlanContext) -> ForeignKeys:
        qn = QualifiedNames(ctx.connection_qualified_name)
        keys = cls()
        for row in rows:
            if not (row["selected"] and row["ref_selected"]):
                keys.omitted += 1
                continue
            db = row["database_name"]
            source = qn.column(db, row["schema_name"], row["table_name"], row["column_name"])
            target = qn.column(
                db, row["ref_schema_name"], row["ref_table_name"], row["ref_column_name"]
            )
            if source in keys.references:
                keys.omitted += 1
                continue
            keys.references[source] = target
            keys.referenced_by.setdefault(target, []).append(source)
        return keys

    @property
    def kept(self) -> int:
        """Links kept: one per referencing column."""
        return len(self.references)

    @property
    def columns(self) -> set[str]:
        """Every column a link points at, at either end (for the reference check)."""
        return set(self.references) | set(self.references.values())


_PARENT_KEYS = {
    TABLE: ("tableName", "tableQualifiedName", "table"),
    TABLE_PARTITION: ("tableName", "tableQualifiedName", "tablePartition"),
    VIEW: ("viewName", "viewQualifiedName", "view"),
    MATERIALISED_VIEW: ("viewName", "viewQualifiedName", "materialisedView"),
}


def column_entity(
    row: dict[str, Any], ctx: AtlanContext, keys: ForeignKeys | None = None
) -> dict[str, Any]:
    """A Column entity from one raw `columns` row (the batch transform applied to one row)."""
    batch = pa.RecordBatch.from_pylist([row], schema=COLUMNS.schema)
    return next(column_entities_from_batches([batch], ctx, keys))


_COLUMN_FIELDS = (
    "database_name",
    "schema_name",
    "table_name",
    "table_kind",
    "table_is_partition",
    "column_name",
    "ordinal_position",
    "data_type",
    "formatted_type",
    "type_name",
    "is_nullable",
    "default_value",
    "generation_expression",
    "is_generated",
    "is_identity",
    "identity_generation",
    "identity_cycle",
    "max_length",
    "octet_length",
    "numeric_precision",
    "numeric_scale",
    "is_primary",
    "is_foreign",
    "is_unique",
    "is_indexed",
    "is_partition_key",
    "partition_order",
    "collation",
    "comment",
)
_YES_NO = {True: "YES", False: "NO", None: None}
_BIT_TYPES = frozenset({"bit", "varbit"})


def column_entities_from_batches(
    batches: Iterable[Any], ctx: AtlanContext, keys: ForeignKeys | None = None
) -> Iterator[dict]:
    """Column entities from raw `columns` record batches, built column-wise with the
    per-relation parts cached (columns arrive grouped by relation); `keys` adds the
    foreign-key links."""
    qn = QualifiedNames(ctx.connection_qualified_name)
    references = keys.references if keys is not None else {}
    referenced_by = keys.referenced_by if keys is not None else {}
    connection = {
        "connectionQualifiedName": ctx.connection_qualified_name,
        "connectionName": ctx.connection_name,
    }
    sync = ctx.sync()
    last: tuple | None = None
    template: dict[str, Any] = {}
    prefix = ""
    # customAttributes in output order, with the usual values of the rare ones
    custom_template: dict[str, Any] = {
        "ordinal_position": None,
        "is_self_referencing": "NO",
        "type_name": None,
        "numeric_precision": None,
        "character_octet_length": None,
        "is_auto_increment": "NO",
        "is_generated": None,
        "generation_expression": None,
        "num_prec_radix": 10,
        "column_size": None,
        "is_identity": None,
        "identity_generation": None,
        "identity_cycle": None,
        "is_unique": None,
        "collation": None,
    }
    for batch in batches:
        columns = [batch.column(name).to_pylist() for name in _COLUMN_FIELDS]
        for (
            db,
            schema,
            table,
            kind,
            in_partition,
            name,
            order,
            data_type,
            formatted,
            type_name,
            nullable,
            default,
            generation,
            generated,
            identity,
            identity_generation,
            identity_cycle,
            max_length,
            octet_length,
            precision,
            scale,
            primary,
            foreign,
            unique,
            indexed,
            partition_key,
            partition_order,
            collation,
            comment,
        ) in zip(*columns, strict=True):
            if (db, schema, table, kind, in_partition) != last:
                last = (db, schema, table, kind, in_partition)
                parent_type = column_parent_type(kind, in_partition)
                name_key, qn_key, parent_key = _PARENT_KEYS[parent_type]
                parent_qn = qn.relation(db, schema, table)
                # every key in output order; the absent optional ones are deleted per column
                template = {
                    "name": None,
                    "qualifiedName": None,
                    **connection,
                    "description": None,
                    "databaseName": db,
                    "databaseQualifiedName": qn.database(db),
                    "schemaName": schema,
                    "schemaQualifiedName": qn.schema(db, schema),
                    name_key: table,
                    qn_key: parent_qn,
                    "dataType": None,
                    "rawDataTypeDefinition": None,
                    "isNullable": None,
                    "isPartition": None,
                    "partitionOrder": None,
                    "isPrimary": None,
                    "isForeign": None,
                    "isIndexed": None,
                    "precision": None,
                    "numericScale": None,
                    "maxLength": None,
                    "defaultValue": None,
                    "order": None,
                    parent_key: ref(parent_type, parent_qn),
                    "foreignKeyFrom": None,
                    "foreignKeyTo": None,
                    **sync,
                }
                prefix = parent_qn + "/"
            attrs = template.copy()
            column_qn = prefix + name
            attrs["name"] = name
            attrs["qualifiedName"] = column_qn
            description = clean_description(comment) if comment is not None else None
            if description is None:
                del attrs["description"]
            else:
                attrs["description"] = description
            attrs["dataType"] = data_type
            if formatted is None:
                del attrs["rawDataTypeDefinition"]
            else:
                attrs["rawDataTypeDefinition"] = formatted
            attrs["isNullable"] = nullable
            attrs["isPartition"] = bool(partition_key)
            if partition_order is None:
                del attrs["partitionOrder"]
            else:
                attrs["partitionOrder"] = partition_order
            attrs["isPrimary"] = bool(primary)
            attrs["isForeign"] = bool(foreign)
            attrs["isIndexed"] = bool(indexed)
            if precision is None:
                del attrs["precision"]
            else:
                attrs["precision"] = precision
            if scale is None:
                del attrs["numericScale"]
            else:
                attrs["numericScale"] = float(scale)
            if max_length is None:
                del attrs["maxLength"]
            else:
                attrs["maxLength"] = max_length
            if default is None:
                del attrs["defaultValue"]
            else:
                attrs["defaultValue"] = default
            attrs["order"] = order
            target = references.get(column_qn) if references else None
            if target is None:
                del attrs["foreignKeyFrom"]
            else:
                attrs["foreignKeyFrom"] = ref(COLUMN, target)
            sources = referenced_by.get(column_qn) if referenced_by else None
            if sources:
                attrs["foreignKeyTo"] = [ref(COLUMN, s) for s in sources]
            else:
                del attrs["foreignKeyTo"]
            custom = custom_template.copy()
            custom["ordinal_position"] = order
            custom["type_name"] = data_type
            if precision is None:
                del custom["numeric_precision"]
            else:
                custom["numeric_precision"] = precision
            if octet_length is None:
                del custom["character_octet_length"]
            else:
                custom["character_octet_length"] = octet_length
            if identity or (default is not None and default.startswith("nextval(")):
                custom["is_auto_increment"] = "YES"
            custom["is_generated"] = _YES_NO[generated]
            if generation is None:
                del custom["generation_expression"]
            else:
                custom["generation_expression"] = generation
            # Atlan's rule (not information_schema's): 2 for bit types, 10 for the rest
            if data_type in _BIT_TYPES:
                custom["num_prec_radix"] = 2
            if type_name is None:
                del custom["column_size"]
            else:
                custom["column_size"] = type_name
            custom["is_identity"] = _YES_NO[identity]
            if identity_generation is None:
                del custom["identity_generation"]
            else:
                custom["identity_generation"] = identity_generation
            custom["identity_cycle"] = _YES_NO[identity_cycle]
            custom["is_unique"] = _YES_NO[unique]
            if collation is None:
                del custom["collation"]
            else:
                custom["collation"] = collation
            yield {
                "typeName": COLUMN,
                "status": "ACTIVE",
                "attributes": attrs,
                "customAttributes": custom,
            }
