"""`pg-metadata extract`: run the pipeline headless, in-process, for every selected database."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from pg_metadata.errors import PgMetadataError

ENV_HELP = """environment variables (options win over them):
  PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGSSLROOTCERT  source server (libpq)
  PG_METADATA_OUTPUT               folder or s3://bucket/prefix (default ./pg_metadata_output)
  PG_METADATA_INCLUDE / _EXCLUDE   Atlan filters: '{"^shop$": ["^sales$"]}' or '{"^shop$": "*"}'
  PG_METADATA_TEMP_TABLE_REGEX     relation names to skip, e.g. '^tmp_'
  PG_METADATA_QUERY_CONNECTIONS    connections per database: 2 (default, one shared snapshot) or 1
  ATLAN_CONNECTION_QUALIFIED_NAME  e.g. default/postgres/1717000000
  ATLAN_CONNECTION_NAME            e.g. prod-pg
  PG_METADATA_AUTH                 basic (default), iam_user or iam_role (AWS RDS IAM)
  PG_METADATA_AWS_REGION           region for IAM tokens (else AWS_REGION, else the RDS host)
  PG_METADATA_ROLE_ARN / _EXTERNAL_ID / _ROLE_SESSION_NAME   iam_role: the role to assume
  AWS_* / AWS_ENDPOINT_URL         AWS credentials (standard chain), S3/STS endpoint
The password is never an option: use PGPASSWORD or ~/.pgpass."""


@dataclass
class DatabaseResult:
    """Outcome of one database's run."""

    database: str
    ok: bool
    entities: dict[str, int] = field(default_factory=dict)
    latest: str = ""
    error: str = ""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="pg-metadata",
        description="Extract PostgreSQL catalogs into Atlan entities (Parquet + JSON Lines).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser(
        "extract",
        help="extract every selected database and write the output",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    env = os.environ.get
    ex.add_argument("--output", default=env("PG_METADATA_OUTPUT"), help="folder or s3://b/p")
    # unset options fall back to the variables, read by CatalogSettings.from_env
    ex.add_argument("--include", help="include filter (PG_METADATA_INCLUDE)")
    ex.add_argument("--exclude", help="exclude filter (PG_METADATA_EXCLUDE)")
    ex.add_argument("--temp-table-regex", metavar="REGEX", help="PG_METADATA_TEMP_TABLE_REGEX")
    ex.add_argument("--connection-qualified-name", metavar="QN", help="Atlan connection QN")
    ex.add_argument("--connection-name", metavar="NAME", help="Atlan connection name")
    ex.add_argument("--host", help="server host (PGHOST)")
    ex.add_argument("--port", type=int, help="server port (PGPORT)")
    ex.add_argument("--user", help="database user (PGUSER)")
    ex.add_argument("--database", help="first database to connect to (PGDATABASE)")
    ex.add_argument("--sslmode", help="libpq sslmode (PGSSLMODE)")
    ex.add_argument("--sslrootcert", help="CA bundle for verify-ca/verify-full (PGSSLROOTCERT)")
    ex.add_argument("--auth", choices=["basic", "iam_user", "iam_role"], help="PG_METADATA_AUTH")
    ex.add_argument("--aws-region", help="PG_METADATA_AWS_REGION")
    ex.add_argument("--aws-profile", help="named AWS profile for IAM auth (AWS_PROFILE)")
    ex.add_argument("--role-arn", help="iam_role: role to assume (PG_METADATA_ROLE_ARN)")
    ex.add_argument("--external-id", help="iam_role: external id (PG_METADATA_EXTERNAL_ID)")
    ex.add_argument("--role-session-name", help="PG_METADATA_ROLE_SESSION_NAME")
    ex.add_argument(
        "--retries",
        type=int,
        default=int(env("PG_METADATA_RETRIES", "3")),
        help="retries when the server is unreachable (default 3; PG_METADATA_RETRIES)",
    )
    ex.add_argument(
        "--query-connections",
        type=int,
        choices=[1, 2],
        help="connections per database (default 2; PG_METADATA_QUERY_CONNECTIONS)",
    )
    ex.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run log")
    demo = sub.add_parser(
        "demo",
        help="start a throwaway local PostgreSQL with a demo catalog and extract it",
        description="Needs the PostgreSQL server binaries (apt-get install postgresql); "
        "no server, database or cloud account of your own.",
    )
    demo.add_argument("--output", default=env("PG_METADATA_OUTPUT"), help="folder or s3://b/p")
    demo.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run log")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return demo(args) if args.command == "demo" else extract(args)
    except PgMetadataError as exc:
        print(f"pg-metadata: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pg-metadata: interrupted", file=sys.stderr)
        return 130


def extract(args: argparse.Namespace) -> int:
    """Validate everything, discover the databases, then run each database's partition."""
    # Imported here so `--help` and config errors are instant.
    import dagster as dg

    from pg_metadata.definitions import build_definitions
    from pg_metadata.orchestration.partitions import DATABASE_PARTITIONS_NAME
    from pg_metadata.orchestration.resources import CatalogSettings, OutputTarget, PostgresResource
    from pg_metadata.output.storage import DEFAULT_TARGET, parse_target

    postgres = PostgresResource(
        host=args.host,
        port=args.port,
        user=args.user,
        database=args.database,
        sslmode=args.sslmode,
        sslrootcert=args.sslrootcert,
        retries=args.retries,
        query_connections=args.query_connections,
        auth=args.auth,
        aws_region=args.aws_region,
        aws_profile=args.aws_profile,
        role_arn=args.role_arn,
        external_id=args.external_id,
        role_session_name=args.role_session_name,
    )
    catalog = CatalogSettings.from_env(
        include_filter=args.include,
        exclude_filter=args.exclude,
        temp_table_regex=args.temp_table_regex,
        connection_qualified_name=args.connection_qualified_name,
        connection_name=args.connection_name,
    )
    output = OutputTarget(target=args.output or DEFAULT_TARGET)
    # Everything checkable without a connection is checked before any work starts.
    catalog.validate()
    parse_target(output.target)
    postgres.validate()
    settings = postgres.settings()

    defs = build_definitions(postgres=postgres, catalog=catalog, output=output)
    run_config = {} if args.verbose else _quiet_run_config()
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    instance = instance or dg.DagsterInstance.ephemeral()

    discover = defs.resolve_job_def("discover_databases").execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False
    )
    if not discover.success:
        print(f"pg-metadata: error: {_failure_line(discover)}", file=sys.stderr)
        return 1
    names = list(instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME))
    if not names:
        print(
            f"pg-metadata: error: no database on {settings.describe()} matches the filters "
            "(check PG_METADATA_INCLUDE / PG_METADATA_EXCLUDE and the CONNECT privilege)",
            file=sys.stderr,
        )
        return 1

    extract_job = defs.resolve_job_def("extract_database")
    results = []
    for name in names:
        run = extract_job.execute_in_process(
            instance=instance, partition_key=name, run_config=run_config, raise_on_error=False
        )
        results.append(_database_result(name, run))
    _print_summary(results, settings.describe(), output.store().uri(""))
    return 0 if all(r.ok for r in results) else 1


def demo(args: argparse.Namespace) -> int:
    """Extract the built-in demo catalog from a throwaway local server."""
    from importlib import resources

    import psycopg2

    from pg_metadata.demo.throwaway import ThrowawayServer

    script = resources.files("pg_metadata.demo").joinpath("shop.sql").read_text("utf-8")
    print("pg-metadata: starting a throwaway PostgreSQL server with the demo catalog...")
    with ThrowawayServer(admin_user="demo", admin_password="demo") as server:
        kwargs = {"host": server.host, "port": server.port, "user": "demo", "password": "demo"}
        for dbname, sql in (("postgres", "CREATE DATABASE demo_shop"), ("demo_shop", script)):
            conn = psycopg2.connect(dbname=dbname, **kwargs)
            try:
                conn.autocommit = True
                conn.cursor().execute(sql)
            finally:
                conn.close()
        os.environ["PGPASSWORD"] = "demo"  # the demo server's own, throwaway password
        demo_args = build_parser().parse_args(
            [
                "extract",
                "--host",
                server.host,
                "--port",
                str(server.port),
                "--user",
                "demo",
                "--sslmode",
                "disable",
                "--include",
                '{"^demo_shop$": "*"}',
                "--retries",
                "0",
                "--connection-name",
                "demo",
            ]
            + (["--output", args.output] if args.output else [])
            + (["--verbose"] if args.verbose else [])
        )
        return extract(demo_args)


def _quiet_run_config() -> dict:
    return {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _failure_line(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description
            if data.error is not None:
                return data.error.message.strip().splitlines()[-1]
    return "the run failed; rerun with --verbose for Dagster's log"


def _database_result(name: str, run) -> DatabaseResult:
    if not run.success:
        return DatabaseResult(name, ok=False, error=_failure_line(run))
    metadata = {}
    for event in run.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.path == ["output", "manifest"]:
            metadata = mat.metadata
    entities = metadata["entities"].value if "entities" in metadata else {}
    latest = str(metadata["latest"].value) if "latest" in metadata else ""
    return DatabaseResult(name, ok=True, entities=dict(entities), latest=latest)


def _print_summary(results: list[DatabaseResult], source: str, target: str) -> None:
    ok = [r for r in results if r.ok]
    print(f"pg-metadata: {len(ok)}/{len(results)} database(s) from {source} -> {target}")
    for r in results:
        if r.ok:
            counts = ", ".join(f"{n} {t}" for t, n in r.entities.items())
            print(f"  {r.database}: {counts}")
            print(f"    manifest: {r.latest}")
        else:
            print(f"  {r.database}: FAILED: {r.error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
