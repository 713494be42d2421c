"""Blocking asset checks on the entity assets: a failure keeps the manifest from publishing.

One check op per entity asset reads its output once and reports each check separately:
unique qualifiedNames, references that resolve to entities the same run emitted, entity
counts that agree with the raw rows, and (for columns) exactly one parent.
"""

from collections.abc import Iterator

import dagster as dg

from pg_metadata import entities as E
from pg_metadata import validation as V
from pg_metadata.assets import ENTITY_KEYS, raw_key
from pg_metadata.datasets import COLUMNS, SCHEMAS, TABLES
from pg_metadata.formats import JsonLinesFile, ParquetFile
from pg_metadata.manifest import latest_file
from pg_metadata.resources import OutputTarget

UNIQUE, REFERENCES, COUNTS, ONE_PARENT = (
    "unique_qualified_names",
    "references_resolve",
    "counts_match_raw",
    "one_parent_per_column",
)
REFERENCED = {
    E.DATABASE: (),
    E.SCHEMA: (E.DATABASE,),
    E.TABLE: (E.SCHEMA,),
    E.TABLE_PARTITION: (E.SCHEMA, E.TABLE, E.TABLE_PARTITION),
    E.VIEW: (E.SCHEMA,),
    E.MATERIALISED_VIEW: (E.SCHEMA,),
    E.COLUMN: E.RELATION_TYPES,
}
RAW = {E.SCHEMA: SCHEMAS, E.COLUMN: COLUMNS, **{t: TABLES for t in E.RELATION_TYPES}}
DESCRIPTIONS = {
    UNIQUE: "Every qualifiedName is emitted once.",
    REFERENCES: "Every relationship reference points at an entity emitted for this database.",
    COUNTS: "The number of entities equals what the raw rows call for.",
    ONE_PARENT: "Every column has exactly one parent reference, matching its names.",
}


def _specs(type_name: str) -> list[dg.AssetCheckSpec]:
    names = [UNIQUE, COUNTS]
    if REFERENCED[type_name]:
        names.insert(1, REFERENCES)
    if type_name == E.COLUMN:
        names.append(ONE_PARENT)
    return [
        dg.AssetCheckSpec(
            n, asset=ENTITY_KEYS[type_name], blocking=True, description=DESCRIPTIONS[n]
        )
        for n in names
    ]


def _result(type_name: str, name: str, finding: V.Finding, **extra) -> dg.AssetCheckResult:
    metadata = {"problems": finding.problems, **extra}
    if finding.examples:
        metadata["examples"] = dg.MetadataValue.md("\n".join(f"- `{e}`" for e in finding.examples))
    return dg.AssetCheckResult(
        asset_key=ENTITY_KEYS[type_name],
        check_name=name,
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def entity_checks(type_name: str) -> dg.AssetChecksDefinition:
    """The checks of one entity asset."""
    key = ENTITY_KEYS[type_name]

    @dg.multi_asset_check(specs=_specs(type_name), name=f"check_{key.path[-1]}")
    def _checks(
        context: dg.AssetCheckExecutionContext, output: OutputTarget
    ) -> Iterator[dg.AssetCheckResult]:
        database = context.partition_key
        store = output.store()

        def load(k: dg.AssetKey, partition: str | None = database) -> str:
            return store.fetch(latest_file(context.instance, k, partition)["uri"])

        emitted = JsonLinesFile(load(key))
        known = None
        if REFERENCED[type_name]:
            known = {
                t: set(V.qualified_names(JsonLinesFile(load(ENTITY_KEYS[t]))))
                for t in REFERENCED[type_name]
            }
        found = V.scan(lambda: iter(emitted), known, columns=type_name == E.COLUMN)
        yield _result(type_name, UNIQUE, found.duplicates)
        if known is not None:
            yield _result(type_name, REFERENCES, found.references)
        if type_name == E.DATABASE:
            expected = 1
        else:
            raw = ParquetFile(load(raw_key(RAW[type_name])))
            expected = (
                raw.num_rows
                if type_name in (E.SCHEMA, E.COLUMN)
                else (V.expected_count(type_name, raw.rows(["is_partition", "table_kind"])))
            )
        counts = V.Finding()
        if found.count != expected:
            counts.add(f"{found.count} {type_name} entities, raw rows call for {expected}")
        yield _result(type_name, COUNTS, counts, entities=found.count, expected=expected)
        if type_name == E.COLUMN:
            yield _result(type_name, ONE_PARENT, found.parents)

    return _checks


entity_asset_checks = [entity_checks(t) for t in ENTITY_KEYS]
