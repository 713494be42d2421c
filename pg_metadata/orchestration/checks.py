"""Blocking integrity checks of the entity assets, computed while each asset writes its output.

Every entity asset declares these checks and reports them right after its output is written:
`validation.Scanner` looks at each entity as it streams to the file, so even a million-column
output is never read back (or downloaded again from S3). A failed check stops the manifest, so
`latest/` keeps pointing at the last good output.
"""

from collections.abc import Iterator

import dagster as dg

from pg_metadata.atlan import entities as E
from pg_metadata.atlan import validation as V
from pg_metadata.catalog.datasets import COLUMNS, LINEAGE, PROCEDURES, SCHEMAS, TABLES
from pg_metadata.orchestration.plan import SourcePlan
from pg_metadata.output.formats import ParquetFile

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
    E.PROCEDURE: (E.SCHEMA,),
    E.PROCESS: E.RELATION_TYPES,
    E.COLUMN_PROCESS: (E.COLUMN, E.PROCESS),
}
RAW = {
    E.SCHEMA: SCHEMAS,
    E.COLUMN: COLUMNS,
    E.PROCEDURE: PROCEDURES,
    E.PROCESS: LINEAGE,
    **{t: TABLES for t in E.RELATION_TYPES},
}
# how many ColumnProcesses a view yields depends on its definition: no count to hold it to
UNCOUNTED = frozenset({E.COLUMN_PROCESS})
DESCRIPTIONS = {
    UNIQUE: "Every qualifiedName is emitted once.",
    REFERENCES: "Every relationship reference points at an entity emitted for this database.",
    COUNTS: "The number of entities equals what the raw rows call for.",
    ONE_PARENT: "Every column has exactly one parent reference, matching its names.",
}


def scanner(
    type_name: str, known: dict[str, set[str]], linked_columns: set[str] | None = None
) -> V.Scanner:
    """The streaming checker of one entity type, given the names of the types it references."""
    return V.Scanner(
        type_name,
        known if REFERENCED[type_name] else None,
        columns=type_name == E.COLUMN,
        self_referencing=type_name in REFERENCED[type_name],
        linked_columns=linked_columns,
    )


def check_specs(plan: SourcePlan, type_name: str) -> list[dg.AssetCheckSpec]:
    """The checks an entity asset declares."""
    names = [UNIQUE] if type_name in UNCOUNTED else [UNIQUE, COUNTS]
    if REFERENCED[type_name]:
        names.insert(1, REFERENCES)
    if type_name == E.COLUMN:
        names.append(ONE_PARENT)
    return [
        dg.AssetCheckSpec(
            n, asset=plan.entity_key(type_name), blocking=True, description=DESCRIPTIONS[n]
        )
        for n in names
    ]


def expected_count(type_name: str, raw: ParquetFile | None) -> int:
    """How many entities of a type the raw rows call for."""
    if type_name == E.DATABASE or raw is None:
        return 1
    if type_name in (E.SCHEMA, E.COLUMN, E.PROCEDURE, E.PROCESS):
        return raw.num_rows
    return V.expected_count(type_name, raw.rows(["is_partition", "table_kind"]))


def _result(key: dg.AssetKey, name: str, finding: V.Finding, **extra) -> dg.AssetCheckResult:
    metadata = {"problems": finding.problems, **extra}
    if finding.examples:
        metadata["examples"] = dg.MetadataValue.md("\n".join(f"- `{e}`" for e in finding.examples))
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def check_results(
    key: dg.AssetKey, type_name: str, found: V.Scan, expected: int
) -> Iterator[dg.AssetCheckResult]:
    """The results of every check of one entity asset (whose key is `key`)."""
    yield _result(key, UNIQUE, found.duplicates)
    if REFERENCED[type_name]:
        yield _result(key, REFERENCES, found.references)
    if type_name not in UNCOUNTED:
        counts = V.Finding()
        if found.count != expected:
            counts.add(f"{found.count} {type_name} entities, raw rows call for {expected}")
        yield _result(key, COUNTS, counts, entities=found.count, expected=expected)
    if type_name == E.COLUMN:
        yield _result(key, ONE_PARENT, found.parents)
