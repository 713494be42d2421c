"""The raw assets of one source (its databases, each database's catalog read) and what every
asset of it shares (spec arguments, error handling, the Atlan naming context); thin Dagster
wrappers over the catalog and output modules. The entity assets are in `entity_assets`."""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import dagster as dg

from pg_metadata import telemetry
from pg_metadata.atlan import entities as E
from pg_metadata.catalog.datasets import (
    COLUMNS,
    DATABASES,
    FINGERPRINT,
    PER_DATABASE,
    TABLES,
    Dataset,
)
from pg_metadata.catalog.preflight import check_patterns
from pg_metadata.catalog.reader import DEFINITION_STATEMENT_TIMEOUT, read_catalog
from pg_metadata.errors import PgMetadataError
from pg_metadata.orchestration.overrides import effective_source
from pg_metadata.orchestration.partitions import (
    ensure_pool_limit,
    is_valid_partition_key,
    sync_database_partitions,
)
from pg_metadata.orchestration.plan import (
    PATH_METADATA,
    RAW_PATHS,
    SourcePlan,
)
from pg_metadata.orchestration.tracing import step_trace
from pg_metadata.output.retention import keep_runs, sweep_leftovers

RETRY_BASE_SECONDS = 2
PROGRESS = logging.getLogger("pg_metadata.progress")
PROGRESS.addHandler(logging.NullHandler())  # printed only where a command asks (the CLI)
# On the second connection: columns alone (then the view definitions). At 1M columns that
# balances the two connections (columns 12.7 s there; schemas, tables, procedures, lineage,
# foreign keys and the fingerprint 13.8 s here), where foreign keys on the helper too left
# this one idle for 2.5 s of a 15.1 s read (bench/RESULTS.md).
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
            # the fingerprint is only for the change sensor, which compares it with the one
            # recorded here: in an instance nobody reads again (the CLI without DAGSTER_HOME)
            # it is not worth its query (1.6-2.7 s of server time at 1M columns)
            queries = [*selected, *([] if context.instance.is_ephemeral else [FINGERPRINT])]
            snapshot = read_catalog(conn, queries, params, helper=helper, on_helper=HELPER_QUERIES)
        span.set_attribute("pg_metadata.statements", snapshot.statements)
    with snapshot:
        fingerprint = snapshot.results.get(FINGERPRINT.name)
        row = fingerprint.read_all().to_pylist()[0] if fingerprint is not None else {}
        tables = snapshot.results.get(TABLES.name)
        relations = row.get("relation_count", tables.rows if tables is not None else "?")
        context.log.info(
            f"read {database!r} in {snapshot.seconds:.2f}s with {snapshot.statements} "
            f"statements; {relations} relations"
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
                    "server_version": server_version,
                    "views_without_definition": dg.MetadataValue.json(snapshot.skipped_views),
                    # the longest any user relation was locked by this read (the view
                    # definitions' transactions; the whole read with one connection)
                    "longest_lock_seconds": round(snapshot.longest_lock_seconds, 3),
                    "non_utf8_replaced": snapshot.replaced_bytes,
                    **({"catalog_fingerprint": row["fingerprint"]} if row else {}),
                },
            )
