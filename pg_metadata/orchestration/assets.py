"""Software-defined assets of one source: thin Dagster wrappers over the catalog, entity and
output modules, built from the source's plan (translated specs, pool, partitions)."""

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from pg_metadata import telemetry
from pg_metadata.atlan import columns as COLS
from pg_metadata.atlan import entities as E
from pg_metadata.atlan import validation as V
from pg_metadata.atlan.procedures import procedure_entities
from pg_metadata.catalog.datasets import (
    COLUMNS,
    DATABASES,
    FINGERPRINT,
    FOREIGN_KEYS,
    LINEAGE,
    PER_DATABASE,
    PROCEDURES,
    SCHEMAS,
    TABLES,
    Dataset,
)
from pg_metadata.catalog.preflight import check_patterns
from pg_metadata.catalog.reader import DEFINITION_STATEMENT_TIMEOUT, read_catalog
from pg_metadata.errors import OutputError, PgMetadataError
from pg_metadata.orchestration import checks as C
from pg_metadata.orchestration.overrides import effective_source
from pg_metadata.orchestration.partitions import (
    ensure_pool_limit,
    is_valid_partition_key,
    sync_database_partitions,
)
from pg_metadata.orchestration.plan import (
    ENTITY_PATHS,
    PATH_METADATA,
    RAW_PATHS,
    SourcePlan,
)
from pg_metadata.orchestration.tracing import step_trace
from pg_metadata.output.formats import Entities, JsonLinesFile, ParquetFile
from pg_metadata.output.parallel import EncodedChunk, EncodedEntities, EncodeJob, encoded_chunks
from pg_metadata.output.retention import keep_runs, sweep_leftovers

RETRY_BASE_SECONDS = 2
PROGRESS = logging.getLogger("pg_metadata.progress")
PROGRESS.addHandler(logging.NullHandler())  # printed only where a command asks (the CLI)
# On the second connection: columns alone. At 1M columns that balances the two connections
# (columns 12.7 s there; schemas, tables, procedures, lineage, foreign keys and the fingerprint
# 13.8 s here), where foreign keys on the helper too left this one idle for 2.5 s of a 15.1 s
# read (bench/RESULTS.md).
HELPER_QUERIES = (COLUMNS,)
_KIND_TAG = "dagster/kind/"


def spec_args(spec: dg.AssetSpec, path: str) -> dict[str, Any]:
    """Keyword arguments for @asset / AssetOut from a translated spec."""
    args: dict[str, Any] = {
        "key": spec.key,
        "group_name": spec.group_name,
        "description": spec.description,
        "metadata": {**spec.metadata, PATH_METADATA: path},
        "tags": {k: v for k, v in spec.tags.items() if not k.startswith(_KIND_TAG)},
        "kinds": set(spec.kinds),
        "owners": list(spec.owners),
    }
    if spec.automation_condition is not None:
        args["automation_condition"] = spec.automation_condition
    if spec.code_version is not None:
        args["code_version"] = spec.code_version
    return args


@contextlib.contextmanager
def user_errors(
    context: dg.AssetExecutionContext | None = None, retries: int = 0
) -> Iterator[None]:
    """Turn our one-line errors into Dagster failures; transient trouble is retried with backoff."""
    try:
        yield
    except PgMetadataError as exc:
        if exc.transient and context is not None and context.retry_number < retries:
            wait = min(60, RETRY_BASE_SECONDS * 2**context.retry_number)
            message = f"retrying in {wait} s ({context.retry_number + 1}/{retries}): {exc}"
            context.log.warning(message)
            PROGRESS.warning(message)  # the CLI prints these (Dagster's own log is quiet there)
            telemetry.log(logging.WARNING, message)
            raise dg.RetryRequested(max_retries=retries, seconds_to_wait=wait) from None
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def probe_output(context: dg.AssetExecutionContext, plan: SourcePlan) -> None:
    """Fail in one line, before the server is touched, when the output cannot be written."""
    with telemetry.phase("pg_metadata.probe_output"):
        keep_runs()  # a bad retention setting fails here, not after everything was written
        store = getattr(context.resources, plan.io_manager_key).output.store()
        store.probe()
        swept = sweep_leftovers(store)
        if swept:
            context.log.info(f"removed {swept} leftover(s) of runs killed over a day ago")


def atlan_context(context: dg.AssetExecutionContext, plan: SourcePlan) -> E.AtlanContext:
    """Naming context for this run: the source's Atlan connection, run id, job, run time."""
    run = context.run
    record = context.instance.get_run_record_by_id(run.run_id)
    run_at_ms = int(record.create_timestamp.timestamp() * 1000) if record else 0
    workflow = run.job_name if not run.job_name.startswith("__") else "pg_metadata"
    source = plan.source
    return E.AtlanContext(
        connection_qualified_name=source.connection_qualified_name,
        connection_name=source.atlan_connection_name,
        tenant_id=source.tenant_id,
        workflow_name=workflow,
        run_id=run.run_id,
        run_at_ms=run_at_ms,
    )


def databases_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """The source's databases (unpartitioned); registers one partition per database."""
    path = RAW_PATHS[DATABASES.name]

    @dg.asset(
        **spec_args(plan.specs[path], path),
        io_manager_key=plan.io_manager_key,
        required_resource_keys={plan.io_manager_key},
        pool=plan.pool,
    )
    def _databases(context: dg.AssetExecutionContext) -> dg.Output:
        source = plan.source
        span = telemetry.phase("pg_metadata.list_databases", **{"pg_metadata.source": plan.name})
        with step_trace(context), user_errors(context, source.retries), span:
            probe_output(context, plan)
            ensure_pool_limit(context.instance, plan)
            params = source.sql_params()
            conn = plan.connector.connect()
            try:
                check_patterns(conn, source.catalog_filter)
                with read_catalog(conn, [DATABASES], params) as snapshot:
                    table = snapshot.results[DATABASES.name].read_all()
            finally:
                conn.close()
        names = table.column("database_name").to_pylist()
        added, removed = sync_database_partitions(context.instance, plan, names)
        skipped = [n for n in names if not is_valid_partition_key(n)]
        if skipped:
            context.log.warning(
                f"{source.name}: not extracted, as Dagster partition keys cannot hold their "
                f"names (newline, tab or other control characters): {skipped!r}; rename the "
                "database(s) or exclude them to silence this"
            )
        context.log.info(
            f"{source.name}: {len(names)} database(s) selected; partitions added {added}, "
            f"removed {removed}"
        )
        versions = table.column("server_version").to_pylist()
        return dg.Output(
            table,
            metadata={
                "databases": dg.MetadataValue.json(names),
                "partitions_added": dg.MetadataValue.json(added),
                "partitions_removed": dg.MetadataValue.json(removed),
                "skipped_databases": dg.MetadataValue.json(skipped),
                "server_version": versions[0] if versions else "",
            },
        )

    return _databases


def catalog_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """Schemas, relations and columns of one database, read in one snapshot."""
    outs = {
        d.name: dg.AssetOut(
            **spec_args(plan.specs[RAW_PATHS[d.name]], RAW_PATHS[d.name]),
            io_manager_key=plan.io_manager_key,
            is_required=False,
        )
        for d in PER_DATABASE
    }

    @dg.multi_asset(
        name=f"{plan.name}__raw_catalog",
        outs=outs,
        partitions_def=plan.partitions,
        can_subset=True,
        required_resource_keys={plan.io_manager_key},
        pool=plan.pool,
    )
    def _catalog(context: dg.AssetExecutionContext) -> Iterator[dg.Output]:
        database = context.partition_key
        selected = [d for d in PER_DATABASE if plan.raw_key(d) in context.selected_asset_keys]
        with step_trace(context):
            yield from _read_database(context, plan, database, selected)

    return _catalog


def _read_database(
    context: dg.AssetExecutionContext, plan: SourcePlan, database: str, selected: list[Dataset]
) -> Iterator[dg.Output]:
    attributes = {"pg_metadata.source": plan.name, "db.namespace": database}
    read = telemetry.phase("pg_metadata.read_catalog", **attributes)
    with user_errors(context, plan.source.retries), read as span:
        source = effective_source(plan.source, context.run.tags)
        probe_output(context, plan)
        params = source.sql_params()
        with contextlib.ExitStack() as connections:
            connect = plan.connector.connect
            conn = connections.enter_context(contextlib.closing(connect(database)))
            helper = None
            if COLUMNS in selected and source.connections_per_database == 2:
                try:
                    helper = connections.enter_context(contextlib.closing(connect(database)))
                except PgMetadataError as exc:
                    if "too many connections" not in str(exc):
                        raise
                    # a CONNECTION LIMIT of 1 (or a full server): one connection does it all
                    context.log.warning(
                        f"{database}: a second connection was refused ({exc}); reading on one "
                        "connection (set query_connections: 1 to skip the attempt)"
                    )
            server_version = conn.info.parameter_status("server_version")
            snapshot = read_catalog(
                conn, [*selected, FINGERPRINT], params, helper=helper, on_helper=HELPER_QUERIES
            )
        span.set_attribute("pg_metadata.statements", snapshot.statements)
    with snapshot:
        (row,) = snapshot.results[FINGERPRINT.name].read_all().to_pylist()
        context.log.info(
            f"read {database!r} in {snapshot.seconds:.2f}s with {snapshot.statements} "
            f"statements; {row['relation_count']} relations"
        )
        skipped = snapshot.skipped_views
        if skipped:
            context.log.warning(
                f"{database}: {len(skipped)} view(s) extracted without their definition, as "
                "another session holds one of their relations exclusively (or reading it took "
                f"over {DEFINITION_STATEMENT_TIMEOUT}): {skipped[:20]}"
            )
        if snapshot.replaced_bytes:
            context.log.warning(
                f"{database}: {snapshot.replaced_bytes} byte sequence(s) that are not UTF-8 (the "
                "database's encoding is SQL_ASCII, which stores bytes unchecked) were replaced "
                "by U+FFFD in names, comments and definitions"
            )
        for d in selected:
            result = snapshot.results[d.name]
            yield dg.Output(
                result,
                output_name=d.name,
                metadata={
                    "query_seconds": round(result.seconds, 3),
                    "statements_per_database": snapshot.statements,
                    "catalog_fingerprint": row["fingerprint"],
                    "server_version": server_version,
                    "views_without_definition": dg.MetadataValue.json(snapshot.skipped_views),
                    # the longest any user relation was locked by this read (the view
                    # definitions' transactions; the whole read with one connection)
                    "longest_lock_seconds": round(snapshot.longest_lock_seconds, 3),
                    "non_utf8_replaced": snapshot.replaced_bytes,
                },
            )


def checked_entities(
    plan: SourcePlan,
    type_name: str,
    entities: Callable[[], Iterable[dict[str, Any]]],
    referenced: dict[str, JsonLinesFile],
    raw: ParquetFile | None,
    metadata: dict[str, Any] | None = None,
    known: dict[str, set[str]] | None = None,
    linked_columns: set[str] | None = None,
    output_name: str = "result",
    build: Callable[[Iterable[pa.RecordBatch]], Iterable[dict[str, Any]]] | None = None,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Emit the entities (the IO manager writes them as they are checked), then the checks.
    `known` gives names of referenced types directly (instead of reading their files).
    With `build` (raw batches -> entities), worker processes build, check and encode the
    entities of the `raw` file's row groups on every core."""
    inputs = C.referenced_inputs(type_name)
    known = dict(known or {})
    for name, t in inputs.items():
        if t not in known:
            known[t] = set(referenced[name].qualified_names())

    def new_scanner() -> V.Scanner:
        return C.scanner(type_name, known, linked_columns)

    scanner = new_scanner()
    stream: Entities | EncodedEntities
    if build is not None and raw is not None:
        job = EncodeJob(type_name, raw.path, build, new_scanner)
        stream = EncodedEntities(type_name, _absorbed(encoded_chunks(job), scanner))
    else:
        stream = Entities(type_name, scanner.watch(entities()))
    yield dg.Output(stream, output_name=output_name, metadata=metadata)
    with telemetry.phase("pg_metadata.checks", **{"pg_metadata.entity_type": type_name}):
        found = scanner.finish(entities)
    expected = C.expected_count(type_name, raw)
    yield from C.check_results(plan.entity_key(type_name), type_name, found, expected)


def _absorbed(chunks: Iterable[EncodedChunk], scanner: V.Scanner) -> Iterator[EncodedChunk]:
    for chunk in chunks:
        scanner.absorb(chunk.scan)
        yield chunk


def _entity_args(plan: SourcePlan, type_name: str) -> dict[str, Any]:
    path = ENTITY_PATHS[type_name]
    return {
        **spec_args(plan.specs[path], path),
        "io_manager_key": plan.io_manager_key,
        "partitions_def": plan.partitions,
        "check_specs": C.check_specs(plan, type_name),
    }


def database_entity_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """The Atlan Database entity of a partition's database."""

    @dg.asset(
        ins={
            "databases": dg.AssetIn(plan.raw_key(DATABASES)),
            "schemas": dg.AssetIn(plan.raw_key(SCHEMAS)),
        },
        **_entity_args(plan, E.DATABASE),
    )
    def _database(
        context: dg.AssetExecutionContext, databases: ParquetFile, schemas: ParquetFile
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with step_trace(context):
            name = context.partition_key
            with user_errors():
                ctx = atlan_context(context, plan)
                rows = [r for r in databases.rows() if r["database_name"] == name]
                if not rows:
                    raise OutputError(
                        f"database {name!r} is not in the latest raw/databases output of "
                        f"source {plan.name!r}; materialize "
                        f"{plan.raw_key(DATABASES).to_user_string()} first"
                    )
            entity = E.database_entity(rows[0], schemas.num_rows, ctx)
            yield from checked_entities(plan, E.DATABASE, lambda: [entity], {}, None)

    return _database


def column_lineage(type_name: str, source: dg.AssetKey) -> dg.TableColumnLineage:
    """Which raw columns each entity attribute is computed from."""
    return dg.TableColumnLineage(
        deps_by_column={
            f"attributes.{attr}": [dg.TableColumnDep(asset_key=source, column_name=c) for c in cols]
            for attr, cols in E.ATTRIBUTE_SOURCES[type_name].items()
        }
    )


def entity_asset(
    plan: SourcePlan,
    type_name: str,
    dataset: Dataset,
    to_entities: Callable[[ParquetFile, E.AtlanContext], Iterable[dict[str, Any]]],
) -> dg.AssetsDefinition:
    """The asset of one Atlan typeName, transformed from one raw dataset and checked while
    written against the entities its references point at."""
    referenced = {
        name: dg.AssetIn(plan.entity_key(t)) for name, t in C.referenced_inputs(type_name).items()
    }
    raw_key = plan.raw_key(dataset)

    @dg.asset(ins={"raw": dg.AssetIn(raw_key), **referenced}, **_entity_args(plan, type_name))
    def _entities(
        context: dg.AssetExecutionContext, raw: ParquetFile, **referenced_entities: JsonLinesFile
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with step_trace(context):
            with user_errors():
                ctx = atlan_context(context, plan)
            yield from checked_entities(
                plan,
                type_name,
                lambda: to_entities(raw, ctx),
                referenced_entities,
                raw,
                metadata={"dagster/column_lineage": column_lineage(type_name, raw_key)},
            )

    return _entities


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


def _relations_of(type_name: str):
    where = _MAY_BE[type_name]
    return lambda raw, ctx: E.relation_entities(raw.rows(where=where), ctx, type_name)


def _schemas(raw: ParquetFile, ctx: E.AtlanContext) -> Iterator[dict[str, Any]]:
    return (E.schema_entity(row, ctx) for row in raw.rows())


def _procedures(raw: ParquetFile, ctx: E.AtlanContext) -> Iterator[dict[str, Any]]:
    return procedure_entities(raw.rows(), ctx)


def column_entity_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """Column entities with their foreign-key links, checked while written."""
    referenced = {
        name: dg.AssetIn(plan.entity_key(t)) for name, t in C.referenced_inputs(E.COLUMN).items()
    }
    raw_key = plan.raw_key(COLUMNS)

    @dg.asset(
        ins={
            "raw": dg.AssetIn(raw_key),
            "foreign_keys": dg.AssetIn(plan.raw_key(FOREIGN_KEYS)),
            **referenced,
        },
        **_entity_args(plan, E.COLUMN),
    )
    def _columns(
        context: dg.AssetExecutionContext,
        raw: ParquetFile,
        foreign_keys: ParquetFile,
        **referenced_entities: JsonLinesFile,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with step_trace(context):
            with user_errors():
                ctx = atlan_context(context, plan)
            keys = COLS.ForeignKeys.from_rows(foreign_keys.rows(), ctx)

            def build(batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
                return COLS.column_entities_from_batches(batches, ctx, keys)

            yield from checked_entities(
                plan,
                E.COLUMN,
                lambda: build(raw.batches()),
                referenced_entities,
                raw,
                build=build,
                metadata={
                    "dagster/column_lineage": column_lineage(E.COLUMN, raw_key),
                    "foreign_key_links": keys.kept,
                    "foreign_key_links_filtered_out": keys.omitted,
                },
                linked_columns=keys.columns,
            )

    return _columns


def lineage_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """Process and ColumnProcess entities of every view, from pg_depend and the definitions."""
    outs = {}
    for type_name in (E.PROCESS, E.COLUMN_PROCESS):
        path = ENTITY_PATHS[type_name]
        outs[path.split("/")[1]] = dg.AssetOut(
            **spec_args(plan.specs[path], path), io_manager_key=plan.io_manager_key
        )
    relation_ins = {
        name: dg.AssetIn(plan.entity_key(t)) for name, t in C.referenced_inputs(E.PROCESS).items()
    }

    @dg.multi_asset(
        name=f"{plan.name}__atlan__lineage",
        outs=outs,
        ins={
            "lineage": dg.AssetIn(plan.raw_key(LINEAGE)),
            "tables": dg.AssetIn(plan.raw_key(TABLES)),
            "column": dg.AssetIn(plan.entity_key(E.COLUMN)),
            **relation_ins,
        },
        partitions_def=plan.partitions,
        check_specs=C.check_specs(plan, E.PROCESS) + C.check_specs(plan, E.COLUMN_PROCESS),
    )
    def _lineage(
        context: dg.AssetExecutionContext,
        lineage: ParquetFile,
        tables: ParquetFile,
        column: JsonLinesFile,
        **relations: JsonLinesFile,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with step_trace(context):
            with user_errors():
                ctx = atlan_context(context, plan)
            definitions = {
                r["table_oid"]: r["view_definition"]
                for r in tables.rows(
                    ["table_oid", "table_kind", "view_definition"], where=_MAY_BE[E.VIEW_OR_MV]
                )
            }
            # sqlglot is imported here, not at load: ~0.4 s off every code location load
            from pg_metadata.atlan import lineage as L

            attributes = {
                "db.namespace": context.partition_key,
                "pg_metadata.views": len(definitions),
            }
            with telemetry.phase("pg_metadata.lineage", **attributes):
                processes, edges, stats = L.lineage_results(list(lineage.rows()), definitions, ctx)
            if stats.examples:
                message = f"view lineage: {stats.metadata()}; e.g. {'; '.join(stats.examples[:3])}"
                context.log.warning(message)
                telemetry.log(logging.WARNING, message)
            yield from checked_entities(
                plan, E.PROCESS, lambda: processes, relations, lineage, output_name="process"
            )
            wanted = {qn for column_qn, inputs, _ in edges for qn in (column_qn, *inputs)}
            known = {
                E.COLUMN: column.present(wanted),
                E.PROCESS: {e["attributes"]["qualifiedName"] for e in processes},
            }
            yield from checked_entities(
                plan,
                E.COLUMN_PROCESS,
                lambda: L.column_processes(edges, ctx),
                {},
                None,
                metadata=stats.metadata(),
                known=known,
                output_name="column_process",
            )

    return _lineage


def entity_assets(plan: SourcePlan) -> list[dg.AssetsDefinition]:
    """Every entity asset of a source."""
    return [
        database_entity_asset(plan),
        entity_asset(plan, E.SCHEMA, SCHEMAS, _schemas),
        *(entity_asset(plan, t, TABLES, _relations_of(t)) for t in E.RELATION_TYPES),
        column_entity_asset(plan),
        entity_asset(plan, E.PROCEDURE, PROCEDURES, _procedures),
        lineage_asset(plan),
    ]
