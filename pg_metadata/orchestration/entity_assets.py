"""The Atlan entity assets of one source: one step turns a database's raw datasets into every
entity file, each file still its own asset with its own checks and lineage in the graph.

One step rather than one per entity type: a small database paid Dagster's per-step cost
(event storage, input lookups, partition checks: ~100 ms a step) ten times, and in one step the
view lineage is parsed in a forked process while the objects are built (bench/RESULTS.md).
"""

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from pg_metadata import telemetry
from pg_metadata.atlan import columns as COLS
from pg_metadata.atlan import entities as E
from pg_metadata.atlan import validation as V
from pg_metadata.atlan.procedures import procedure_entities
from pg_metadata.atlan.processes import ColumnEdge, column_processes
from pg_metadata.catalog.datasets import (
    COLUMNS,
    DATABASES,
    FOREIGN_KEYS,
    LINEAGE,
    PROCEDURES,
    SCHEMAS,
    TABLES,
    Dataset,
)
from pg_metadata.errors import OutputError
from pg_metadata.orchestration import checks as C
from pg_metadata.orchestration.assets import atlan_context, spec_args, user_errors
from pg_metadata.orchestration.plan import ENTITY_PATHS, SourcePlan
from pg_metadata.orchestration.tracing import step_trace
from pg_metadata.output.formats import Entities, ParquetFile
from pg_metadata.output.parallel import (
    Background,
    EncodedChunk,
    EncodedEntities,
    EncodeJob,
    encoded_chunks,
    release_memory,
)

# Each type after the types its references name.
OBJECT_TYPES = (E.DATABASE, E.SCHEMA, *E.RELATION_TYPES, E.PROCEDURE)
ENTITY_TYPES = (*OBJECT_TYPES, E.COLUMN, E.PROCESS, E.COLUMN_PROCESS)
# the raw datasets each type is built from
RAW_INPUTS: dict[str, tuple[Dataset, ...]] = {
    E.DATABASE: (DATABASES, SCHEMAS),
    E.SCHEMA: (SCHEMAS,),
    **{t: (TABLES,) for t in E.RELATION_TYPES},
    E.PROCEDURE: (PROCEDURES,),
    E.COLUMN: (COLUMNS, FOREIGN_KEYS),
    E.PROCESS: (LINEAGE, TABLES),
    E.COLUMN_PROCESS: (LINEAGE, TABLES),
}
RAW_DATASETS = (DATABASES, SCHEMAS, TABLES, PROCEDURES, COLUMNS, FOREIGN_KEYS, LINEAGE)
# Below this many views the lineage is parsed in the step itself (a fork costs more).
BACKGROUND_VIEWS = 500

EntityStream = Callable[[], Iterable[dict[str, Any]]]


def entity_assets(plan: SourcePlan) -> list[dg.AssetsDefinition]:
    """Every entity asset of a source (one multi-asset: one step per database)."""
    return [entities_asset(plan)]


def out_name(type_name: str) -> str:
    """The output (and folder) name of a typeName's asset: `table`, `column_process`."""
    return ENTITY_PATHS[type_name].split("/")[1]


def entities_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """Every Atlan entity of a database, type by type, each checked while written."""
    outs = {
        out_name(t): dg.AssetOut(
            **spec_args(plan.specs[ENTITY_PATHS[t]], ENTITY_PATHS[t]),
            io_manager_key=plan.io_manager_key,
            is_required=False,
        )
        for t in ENTITY_TYPES
    }
    # the graph shows each entity asset after its raw rows and the entity assets its
    # references name, as when each had a step of its own
    deps = {
        out_name(t): {
            *(plan.raw_key(d) for d in RAW_INPUTS[t]),
            *(plan.entity_key(r) for r in C.REFERENCED[t] if r != t),
        }
        for t in ENTITY_TYPES
    }

    @dg.multi_asset(
        name=f"{plan.name}__atlan__entities",
        outs=outs,
        ins={d.name: dg.AssetIn(plan.raw_key(d)) for d in RAW_DATASETS},
        partitions_def=plan.partitions,
        can_subset=True,
        check_specs=[s for t in ENTITY_TYPES for s in C.check_specs(plan, t)],
        internal_asset_deps=deps,
    )
    def _entities(
        context: dg.AssetExecutionContext, **inputs: ParquetFile
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with step_trace(context):
            with user_errors():
                ctx = atlan_context(context, plan)
            chosen = context.selected_asset_keys
            selected = {t for t in ENTITY_TYPES if plan.entity_key(t) in chosen}
            checks = context.selected_asset_check_keys
            build = _Build(plan, context, ctx, inputs, selected)
            for item in build.outputs():
                if not isinstance(item, dg.AssetCheckResult) or _check_key(item) in checks:
                    yield item

    return _entities


def _check_key(result: dg.AssetCheckResult) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(result.asset_key, result.check_name)


@dataclass
class ViewLineage:
    """The Process and ColumnProcess entities of a database's views, and the column names
    the ColumnProcesses reference (for their check)."""

    processes: list[dict[str, Any]]
    edges: list[ColumnEdge]  # compact until written (a dict is ~2 KB)
    stats: Any  # lineage.LineageStats
    wanted: set[str]
    seconds: float


def _view_lineage(tables: ParquetFile, lineage: ParquetFile, ctx: E.AtlanContext) -> ViewLineage:
    """The lineage of a database's views, read from its raw files where it is parsed: a
    forked process reads them itself, so the step never holds the definitions (~70 MB for
    40,000 views)."""
    # sqlglot is imported here, where the lineage is parsed: ~0.4 s off every code location load
    from pg_metadata.atlan import lineage as L

    started = time.perf_counter()
    definitions = {
        r["table_oid"]: r["view_definition"]
        for r in tables.rows(
            ["table_oid", "table_kind", "view_definition"], where=_MAY_BE[E.VIEW_OR_MV]
        )
    }
    rows = list(lineage.rows())
    processes, edges, stats = L.lineage_results(rows, definitions, ctx)
    del rows, definitions
    wanted = {qn for column_qn, inputs, _ in edges for qn in (column_qn, *inputs)}
    return ViewLineage(processes, edges, stats, wanted, time.perf_counter() - started)


class _Build:
    """One database's entity outputs in order; the names each type emits are kept for the
    checks of the types that reference them. A type that is not selected but named by a
    selected one is built for its names only, and not written."""

    def __init__(
        self,
        plan: SourcePlan,
        context: dg.AssetExecutionContext,
        ctx: E.AtlanContext,
        raw: dict[str, ParquetFile],
        selected: set[str],
    ) -> None:
        self.plan, self.context, self.ctx, self.raw = plan, context, ctx, raw
        self.selected = selected
        self.needed = set(selected)
        for t in reversed(ENTITY_TYPES):  # referenced types come first
            if t in self.needed:
                self.needed.update(C.REFERENCED[t])
        self.known: dict[str, set[str]] = {}

    def outputs(self) -> Iterator[dg.Output | dg.AssetCheckResult]:
        views = None
        if E.PROCESS in self.needed:
            views = self._start_lineage()  # parsed in the background while objects are built
        try:
            for t in OBJECT_TYPES:
                if t in self.needed:
                    metadata = None
                    if t != E.DATABASE:
                        metadata = {"dagster/column_lineage": column_lineage(self.plan, t)}
                    yield from self._emit(t, self._object_stream(t), metadata=metadata)
                    release_memory()  # one type's garbage is not the next one's peak
            lineage = None
            if views is not None:
                with telemetry.phase("pg_metadata.lineage", **self._lineage_attributes()) as span:
                    lineage = views.result()
                    span.set_attribute("pg_metadata.parse_seconds", round(lineage.seconds, 3))
            if lineage is not None:
                yield from self._processes(lineage)
            if E.COLUMN in self.needed:
                yield from self._columns(lineage.wanted if lineage is not None else set())
            if lineage is not None and E.COLUMN_PROCESS in self.selected:
                edges, ctx = lineage.edges, self.ctx
                yield from self._emit(
                    E.COLUMN_PROCESS,
                    lambda: column_processes(edges, ctx),
                    metadata=lineage.stats.metadata(),
                )
        finally:
            if views is not None:
                views.close()

    def _emit(
        self,
        type_name: str,
        stream: EntityStream,
        wanted: set[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Write (or, when not selected, only name) one type; its names, or those of `wanted`
        among them, go to `known`."""
        names = self.known.setdefault(type_name, set())
        if type_name not in self.selected:
            names.update(_names_among(_qualified_names(stream()), wanted))
            return
        known = {r: self.known[r] for r in C.REFERENCED[type_name] if r != type_name}
        yield from checked_entities(
            self.plan,
            type_name,
            stream,
            self._raw_of(type_name),
            known=known,
            output_name=out_name(type_name),
            names=(names, wanted),
            **kwargs,
        )

    def _raw_of(self, type_name: str) -> ParquetFile | None:
        if type_name in (E.DATABASE, E.COLUMN_PROCESS):
            return None
        return self.raw[RAW_INPUTS[type_name][0].name]

    def _object_stream(self, type_name: str) -> EntityStream:
        if type_name == E.DATABASE:
            return functools.partial(list, [self._database_entity()])
        return functools.partial(_OBJECT_BUILDERS[type_name], self._raw_of(type_name), self.ctx)

    def _database_entity(self) -> dict[str, Any]:
        name = self.context.partition_key
        with user_errors():
            rows = [r for r in self.raw[DATABASES.name].rows() if r["database_name"] == name]
            if not rows:
                raise OutputError(
                    f"database {name!r} is not in the latest raw/databases output of source "
                    f"{self.plan.name!r}; materialize "
                    f"{self.plan.raw_key(DATABASES).to_user_string()} first"
                )
        return E.database_entity(rows[0], self.raw[SCHEMAS.name].num_rows, self.ctx)

    def _columns(self, wanted: set[str]) -> Iterator[dg.Output | dg.AssetCheckResult]:
        raw = self.raw[COLUMNS.name]
        ctx = self.ctx
        keys = COLS.ForeignKeys.from_rows(self.raw[FOREIGN_KEYS.name].rows(), ctx)

        def build(batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
            return COLS.column_entities_from_batches(batches, ctx, keys)

        yield from self._emit(
            E.COLUMN,
            lambda: build(raw.batches()),
            wanted,
            build=build,
            metadata={
                "dagster/column_lineage": column_lineage(self.plan, E.COLUMN),
                "foreign_key_links": keys.kept,
                "foreign_key_links_filtered_out": keys.omitted,
            },
            linked_columns=keys.columns,
        )

    def _lineage_attributes(self) -> dict[str, Any]:
        views = self.raw[LINEAGE.name].num_rows
        return {"db.namespace": self.context.partition_key, "pg_metadata.views": views}

    def _start_lineage(self) -> Background[ViewLineage]:
        tables, lineage = self.raw[TABLES.name], self.raw[LINEAGE.name]
        forked = lineage.num_rows >= BACKGROUND_VIEWS  # else in this process, when waited for
        return Background("view lineage", _view_lineage, (tables, lineage, self.ctx), forked)

    def _processes(self, lineage: ViewLineage) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """The Process entities, written before the columns: the column workers are forked
        from this process, and need not inherit them."""
        stats = lineage.stats
        if stats.examples:
            message = f"view lineage: {stats.metadata()}; e.g. {'; '.join(stats.examples[:3])}"
            self.context.log.warning(message)
            telemetry.log(logging.WARNING, message)
        processes = lineage.processes
        lineage.processes = []
        yield from self._emit(E.PROCESS, lambda: processes)


def _qualified_names(entities: Iterable[dict[str, Any]]) -> Iterator[str]:
    return (e["attributes"]["qualifiedName"] for e in entities)


def _names_among(names: Iterable[str], wanted: set[str] | None) -> Iterable[str]:
    return names if wanted is None else wanted.intersection(names)


def checked_entities(
    plan: SourcePlan,
    type_name: str,
    entities: EntityStream,
    raw: ParquetFile | None,
    known: dict[str, set[str]],
    output_name: str,
    names: tuple[set[str], set[str] | None],
    metadata: dict[str, Any] | None = None,
    linked_columns: set[str] | None = None,
    build: Callable[[Iterable[pa.RecordBatch]], Iterable[dict[str, Any]]] | None = None,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Emit the entities (the IO manager writes them as they are checked), then the checks.
    `known` gives the names of the types this one references; `names` (a set, and the names
    wanted in it or None for all) collects this type's names as they pass. With `build` (raw
    batches -> entities), worker processes build, check and encode the entities of the `raw`
    file's row groups on every core."""

    def new_scanner() -> V.Scanner:
        return C.scanner(type_name, known, linked_columns)

    scanner = new_scanner()
    sink, wanted = names
    stream: Entities | EncodedEntities
    if build is not None and raw is not None:
        job = EncodeJob(type_name, raw.path, build, new_scanner)
        chunks = _absorbed(encoded_chunks(job), scanner, sink, wanted)
        stream = EncodedEntities(type_name, chunks)
    else:
        stream = Entities(type_name, _named(scanner.watch(entities()), sink, wanted))
    yield dg.Output(stream, output_name=output_name, metadata=metadata)
    with telemetry.phase("pg_metadata.checks", **{"pg_metadata.entity_type": type_name}):
        found = scanner.finish(entities)
    expected = C.expected_count(type_name, raw)
    yield from C.check_results(plan.entity_key(type_name), type_name, found, expected)


def _absorbed(
    chunks: Iterable[EncodedChunk], scanner: V.Scanner, sink: set[str], wanted: set[str] | None
) -> Iterator[EncodedChunk]:
    for chunk in chunks:
        scanner.absorb(chunk.scan)
        sink.update(_names_among(chunk.names, wanted))
        yield chunk


def _named(
    entities: Iterable[dict[str, Any]], sink: set[str], wanted: set[str] | None
) -> Iterator[dict[str, Any]]:
    for entity in entities:
        qn = entity["attributes"]["qualifiedName"]
        if wanted is None or qn in wanted:
            sink.add(qn)
        yield entity


def column_lineage(plan: SourcePlan, type_name: str) -> dg.TableColumnLineage:
    """Which raw columns each entity attribute is computed from."""
    source = plan.raw_key(RAW_INPUTS[type_name][0])
    return dg.TableColumnLineage(
        deps_by_column={
            f"attributes.{attr}": [dg.TableColumnDep(asset_key=source, column_name=c) for c in cols]
            for attr, cols in E.ATTRIBUTE_SOURCES[type_name].items()
        }
    )


# Rows that may hold each relation type (a superset: relation_entities decides exactly), so
# each relation asset turns only its own rows into Python objects. Plain kernels on columns:
# Python literals in Arrow expressions would import pandas (+0.5 s, +36 MB) into every run.
_MAY_BE: dict[str, Callable[[pa.RecordBatch], pa.Array]] = {
    E.TABLE: lambda b: pc.invert(pc.match_substring_regex(b.column("table_kind"), "^[vm]$")),
    E.TABLE_PARTITION: lambda b: b.column("is_partition"),
    E.VIEW: lambda b: pc.match_substring_regex(b.column("table_kind"), "^v$"),
    E.MATERIALISED_VIEW: lambda b: pc.match_substring_regex(b.column("table_kind"), "^m$"),
    E.VIEW_OR_MV: lambda b: pc.match_substring_regex(b.column("table_kind"), "^[vm]$"),
}


def _relations_of(type_name: str) -> Callable[[ParquetFile, E.AtlanContext], Iterable[dict]]:
    where = _MAY_BE[type_name]
    return lambda raw, ctx: E.relation_entities(raw.rows(where=where), ctx, type_name)


_OBJECT_BUILDERS: dict[str, Callable[[ParquetFile, E.AtlanContext], Iterable[dict[str, Any]]]] = {
    E.SCHEMA: lambda raw, ctx: (E.schema_entity(row, ctx) for row in raw.rows()),
    E.PROCEDURE: lambda raw, ctx: procedure_entities(raw.rows(), ctx),
    **{t: _relations_of(t) for t in E.RELATION_TYPES},
}
