"""Software-defined assets: thin Dagster wrappers over the extract, entity and format modules."""

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from pg_metadata.atlan import entities as E
from pg_metadata.atlan import validation as V
from pg_metadata.catalog.datasets import (
    COLUMNS,
    DATABASES,
    FINGERPRINT,
    PER_DATABASE,
    SCHEMAS,
    TABLES,
    Dataset,
)
from pg_metadata.catalog.reader import read_catalog
from pg_metadata.errors import OutputError, PgMetadataError
from pg_metadata.orchestration import checks as C
from pg_metadata.orchestration.keys import ENTITY_KEYS, raw_key
from pg_metadata.orchestration.partitions import database_partitions, sync_database_partitions
from pg_metadata.orchestration.resources import CatalogSettings, PostgresResource
from pg_metadata.output.formats import Entities, JsonLinesFile, ParquetFile

RAW_GROUP = "postgres_catalog"
ENTITY_GROUP = "atlan_entities"
SOURCE_POOL = "pg_metadata_source"
RETRY_BASE_SECONDS = 2


def column_schema(dataset: Dataset) -> dg.TableSchema:
    """The dataset's columns as Dagster table schema metadata."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=desc)
            for name, dtype, desc in dataset.fields
        ]
    )


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
            context.log.warning(f"{exc}; retrying in {wait}s")
            raise dg.RetryRequested(max_retries=retries, seconds_to_wait=wait) from None
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def atlan_context(context: dg.AssetExecutionContext, catalog: CatalogSettings) -> E.AtlanContext:
    """Naming context for this run: run id, job name and run creation time."""
    run = context.run
    record = context.instance.get_run_record_by_id(run.run_id)
    run_at_ms = int(record.create_timestamp.timestamp() * 1000) if record else 0
    workflow = run.job_name if not run.job_name.startswith("__") else "pg_metadata"
    return catalog.atlan_context(run_id=run.run_id, workflow=workflow, run_at_ms=run_at_ms)


@dg.asset(
    key=raw_key(DATABASES),
    group_name=RAW_GROUP,
    kinds={"postgres", "parquet"},
    description="Every connectable, non-template database on the server that the filters "
    "select (name, owner, encoding, collation, comment, size). Registers one partition per "
    "database.",
    metadata={"dagster/column_schema": column_schema(DATABASES)},
    pool=SOURCE_POOL,
)
def databases(
    context: dg.AssetExecutionContext, postgres: PostgresResource, catalog: CatalogSettings
) -> dg.Output:
    with user_errors(context, postgres.retries):
        catalog.validate()
        postgres.validate()
        params = catalog.catalog_filter().sql_params()
        conn = postgres.connect()
        try:
            with read_catalog(conn, [DATABASES], params) as snapshot:
                table = snapshot.results[DATABASES.name].read_all()
        finally:
            conn.close()
    names = table.column("database_name").to_pylist()
    added, removed = sync_database_partitions(context.instance, names)
    context.log.info(
        f"{len(names)} database(s) selected; partitions added {added}, removed {removed}"
    )
    versions = table.column("server_version").to_pylist()
    return dg.Output(
        table,
        metadata={
            "databases": dg.MetadataValue.json(names),
            "partitions_added": dg.MetadataValue.json(added),
            "partitions_removed": dg.MetadataValue.json(removed),
            "server_version": versions[0] if versions else "",
        },
    )


@dg.multi_asset(
    outs={
        d.name: dg.AssetOut(
            key=raw_key(d),
            kinds={"postgres", "parquet"},
            description=d.description,
            metadata={"dagster/column_schema": column_schema(d)},
            is_required=False,
        )
        for d in PER_DATABASE
    },
    partitions_def=database_partitions,
    group_name=RAW_GROUP,
    can_subset=True,
    pool=SOURCE_POOL,
)
def extract_catalog(
    context: dg.AssetExecutionContext, postgres: PostgresResource, catalog: CatalogSettings
) -> Iterator[dg.Output]:
    """Schemas, relations and columns of one database, read in one snapshot."""
    database = context.partition_key
    selected = [d for d in PER_DATABASE if raw_key(d) in context.selected_asset_keys]
    with user_errors(context, postgres.retries):
        params = catalog.catalog_filter().sql_params()
        with contextlib.ExitStack() as connections:
            conn = connections.enter_context(contextlib.closing(postgres.connect(database)))
            helper = None
            if COLUMNS in selected and postgres.connections_per_database() == 2:
                helper = connections.enter_context(contextlib.closing(postgres.connect(database)))
            server_version = conn.info.parameter_status("server_version")
            snapshot = read_catalog(
                conn, [*selected, FINGERPRINT], params, helper=helper, on_helper=COLUMNS
            )
    with snapshot:
        (row,) = snapshot.results[FINGERPRINT.name].read_all().to_pylist()
        context.log.info(
            f"read {database!r} in {snapshot.seconds:.2f}s with {snapshot.statements} "
            f"statements; {row['relation_count']} relations"
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
                },
            )


_ENTITY = {
    "group_name": ENTITY_GROUP,
    "kinds": {"atlan", "json"},
    "partitions_def": database_partitions,
}


def checked_entities(
    type_name: str,
    entities: Callable[[], Iterable[dict[str, Any]]],
    referenced: dict[str, JsonLinesFile],
    raw: ParquetFile | None,
    metadata: dict[str, Any] | None = None,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Emit the entities (the IO manager writes them as they are checked), then the checks."""
    inputs = C.referenced_inputs(type_name)
    known = {t: set(V.qualified_names(referenced[name])) for name, t in inputs.items()}
    scanner = C.scanner(type_name, known)
    yield dg.Output(Entities(type_name, scanner.watch(entities())), metadata=metadata)
    found = scanner.finish(entities)
    yield from C.check_results(type_name, found, C.expected_count(type_name, raw))


@dg.asset(
    key=ENTITY_KEYS[E.DATABASE],
    ins={
        "databases": dg.AssetIn(raw_key(DATABASES)),
        "schemas": dg.AssetIn(raw_key(SCHEMAS)),
    },
    description="The Atlan Database entity of this partition's database (JSON Lines).",
    check_specs=C.check_specs(E.DATABASE),
    **_ENTITY,
)
def database_entity(
    context: dg.AssetExecutionContext,
    catalog: CatalogSettings,
    databases: ParquetFile,
    schemas: ParquetFile,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    name = context.partition_key
    with user_errors():
        ctx = atlan_context(context, catalog)
        rows = [r for r in databases.rows() if r["database_name"] == name]
        if not rows:
            raise OutputError(
                f"database {name!r} is not in the latest raw/databases output; "
                "materialize raw/databases first"
            )
    entity = E.database_entity(rows[0], schemas.num_rows, ctx)
    yield from checked_entities(E.DATABASE, lambda: [entity], {}, None)


def entity_schema(type_name: str) -> dg.TableSchema:
    """The entity attributes computed from raw columns, as Dagster table schema metadata."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f"attributes.{attr}", "json", description=f"from {', '.join(cols)}")
            for attr, cols in E.ATTRIBUTE_SOURCES[type_name].items()
        ]
    )


def column_lineage(type_name: str, source: dg.AssetKey) -> dg.TableColumnLineage:
    """Which raw columns each entity attribute is computed from."""
    return dg.TableColumnLineage(
        deps_by_column={
            f"attributes.{attr}": [dg.TableColumnDep(asset_key=source, column_name=c) for c in cols]
            for attr, cols in E.ATTRIBUTE_SOURCES[type_name].items()
        }
    )


def entity_asset(
    type_name: str,
    dataset: Dataset,
    to_entities: Callable[[ParquetFile, E.AtlanContext], Iterable[dict[str, Any]]],
) -> dg.AssetsDefinition:
    """The asset of one Atlan typeName, transformed from one raw dataset and checked while
    written against the entities its references point at."""
    referenced = {
        name: dg.AssetIn(ENTITY_KEYS[t]) for name, t in C.referenced_inputs(type_name).items()
    }

    @dg.asset(
        key=ENTITY_KEYS[type_name],
        ins={"raw": dg.AssetIn(raw_key(dataset)), **referenced},
        description=f"Atlan {type_name} entities of one database (JSON Lines).",
        metadata={"dagster/column_schema": entity_schema(type_name)},
        check_specs=C.check_specs(type_name),
        **_ENTITY,
    )
    def _entities(
        context: dg.AssetExecutionContext,
        catalog: CatalogSettings,
        raw: ParquetFile,
        **referenced_entities: JsonLinesFile,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        with user_errors():
            ctx = atlan_context(context, catalog)
        yield from checked_entities(
            type_name,
            lambda: to_entities(raw, ctx),
            referenced_entities,
            raw,
            metadata={"dagster/column_lineage": column_lineage(type_name, raw_key(dataset))},
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
}


def _relations_of(type_name: str):
    where = _MAY_BE[type_name]
    return lambda raw, ctx: E.relation_entities(raw.rows(where=where), ctx, type_name)


schema_entities = entity_asset(
    E.SCHEMA, SCHEMAS, lambda raw, ctx: (E.schema_entity(row, ctx) for row in raw.rows())
)
relation_assets = [entity_asset(t, TABLES, _relations_of(t)) for t in E.RELATION_TYPES]
column_entities = entity_asset(
    E.COLUMN, COLUMNS, lambda raw, ctx: E.column_entities_from_batches(raw.batches(), ctx)
)
entity_assets = [database_entity, schema_entities, *relation_assets, column_entities]
