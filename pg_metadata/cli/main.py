"""`pg-metadata`: extract headless, run preflight checks, serve the REST API, run the demo."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from pg_metadata.errors import PgMetadataError

ENV_HELP = """environment variables (options win over them):
  PG_METADATA_SOURCES              a sources file (YAML): several servers, one entry each
  PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGSSLROOTCERT  without a sources file,
                                   the one server of the source named `default` (libpq)
  PG_METADATA_OUTPUT               folder or s3://bucket/prefix (default ./pg_metadata_output);
                                   each source writes under <output>/<source>/
  PG_METADATA_INCLUDE / _EXCLUDE   Atlan filters: '{"^shop$": ["^sales$"]}' or '{"^shop$": "*"}'
  PG_METADATA_TEMP_TABLE_REGEX     relation names to skip, e.g. '^tmp_'
  PG_METADATA_QUERY_CONNECTIONS    connections per database: 2 (default, one shared snapshot) or 1
  PG_METADATA_MAX_CONNECTIONS      never more than this many sessions on the server
  PG_METADATA_JOBS                 databases extracted at once (default: the usable cores)
  PG_METADATA_STATEMENT_TIMEOUT_MS / _LOCK_TIMEOUT_MS  server-side limits (300000 / 5000)
  PG_METADATA_KEEP_RUNS            complete runs kept per database (default 5)
  ATLAN_CONNECTION_QUALIFIED_NAME  e.g. default/postgres/1717000000
  ATLAN_CONNECTION_NAME            e.g. prod-pg
  PG_METADATA_AUTH                 basic (default), iam_user or iam_role (AWS RDS IAM)
  PG_METADATA_AWS_REGION           region for IAM tokens (else AWS_REGION, else the RDS host)
  PG_METADATA_ROLE_ARN / _EXTERNAL_ID / _ROLE_SESSION_NAME   iam_role: the role to assume
  AWS_* / AWS_ENDPOINT_URL         AWS credentials (standard chain), S3/STS endpoint
The password is never an option: use PGPASSWORD, ~/.pgpass or a source's password_env."""


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """Which sources and output: a sources file, or the `default` source from options/PG*."""
    env = os.environ.get
    parser.add_argument("--output", default=env("PG_METADATA_OUTPUT"), help="folder or s3://b/p")
    parser.add_argument(
        "--sources",
        metavar="FILE",
        default=env("PG_METADATA_SOURCES"),
        help="sources file (PG_METADATA_SOURCES); default: one source from the PG* variables",
    )
    parser.add_argument(
        "--source",
        metavar="NAME",
        action="append",
        help="extract only this source of the sources file (repeatable)",
    )
    # unset options fall back to the variables (Source.from_env)
    parser.add_argument("--include", help="include filter (PG_METADATA_INCLUDE)")
    parser.add_argument("--exclude", help="exclude filter (PG_METADATA_EXCLUDE)")
    parser.add_argument("--temp-table-regex", metavar="REGEX", help="PG_METADATA_TEMP_TABLE_REGEX")
    parser.add_argument("--connection-qualified-name", metavar="QN", help="Atlan connection QN")
    parser.add_argument("--connection-name", metavar="NAME", help="Atlan connection name")
    parser.add_argument("--host", help="server host (PGHOST)")
    parser.add_argument("--port", type=int, help="server port (PGPORT)")
    parser.add_argument("--user", help="database user (PGUSER)")
    parser.add_argument("--database", help="first database to connect to (PGDATABASE)")
    parser.add_argument("--sslmode", help="libpq sslmode (PGSSLMODE)")
    parser.add_argument("--sslrootcert", help="CA bundle for verify-ca/verify-full (PGSSLROOTCERT)")
    parser.add_argument(
        "--auth", choices=["basic", "iam_user", "iam_role"], help="PG_METADATA_AUTH"
    )
    parser.add_argument("--aws-region", help="PG_METADATA_AWS_REGION")
    parser.add_argument("--aws-profile", help="named AWS profile for IAM auth (AWS_PROFILE)")
    parser.add_argument("--role-arn", help="iam_role: role to assume (PG_METADATA_ROLE_ARN)")
    parser.add_argument("--external-id", help="iam_role: external id (PG_METADATA_EXTERNAL_ID)")
    parser.add_argument("--role-session-name", help="PG_METADATA_ROLE_SESSION_NAME")
    parser.add_argument(
        "--retries",
        type=int,
        help="retries when the server is unreachable (default 3; PG_METADATA_RETRIES)",
    )
    parser.add_argument(
        "--statement-timeout-ms",
        type=int,
        metavar="MS",
        help="per-statement limit on the server (default 300000; PG_METADATA_STATEMENT_TIMEOUT_MS)",
    )
    parser.add_argument(
        "--lock-timeout-ms",
        type=int,
        metavar="MS",
        help="longest wait for a lock (default 5000; PG_METADATA_LOCK_TIMEOUT_MS)",
    )
    parser.add_argument(
        "--query-connections",
        type=int,
        choices=[1, 2],
        help="connections per database (default 2; PG_METADATA_QUERY_CONNECTIONS)",
    )


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
        help="extract every selected database of every selected source and write the output",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    add_source_options(ex)
    ex.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run log")
    ex.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors (no progress, no summary)"
    )
    ex.add_argument(
        "-j",
        "--jobs",
        metavar="N",
        help="databases of a source extracted at once, each in its own process (default: the "
        "usable cores, within the source's max_connections; PG_METADATA_JOBS)",
    )
    ex.add_argument(
        "--json",
        action="store_true",
        help="print the outcome as JSON (per database: status, entities, manifest, seconds, "
        "error) instead of the summary",
    )
    check = sub.add_parser(
        "check",
        help="preflight: credentials, version, filters, privileges, tables, output, instance",
        description="Run the preflight checks of each selected source without extracting "
        "anything; exit 0 when every check passed, 1 otherwise.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    add_source_options(check)
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    srv = sub.add_parser(
        "serve",
        help="serve the REST API (Atlan's /workflows/v1) over this deployment",
        description="Serve the REST API: test credentials, list schemas, preflight, start, "
        "follow and stop extractions as Dagster runs (launched through the Dagster webserver "
        "at PG_METADATA_DAGSTER_URL, default http://127.0.0.1:3000, on the instance of "
        "DAGSTER_HOME). PG_METADATA_API_TOKEN: the bearer token every request but /health "
        "needs; without one the API listens on loopback only.",
    )
    srv.add_argument("--host", default="127.0.0.1", help="bind address (127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (8000)")
    srv.add_argument("-v", "--verbose", action="store_true", help="log every request")
    demo = sub.add_parser(
        "demo",
        help="start a throwaway local PostgreSQL with a demo catalog and extract it",
        description="Needs the PostgreSQL server binaries (apt-get install postgresql); "
        "no server, database or cloud account of your own. With --serve, keeps the server "
        "running and opens the Dagster UI on it until Ctrl-C.",
    )
    demo.add_argument(
        "--output", default=os.environ.get("PG_METADATA_OUTPUT"), help="folder or s3://b/p"
    )
    demo.add_argument(
        "--serve", action="store_true", help="keep the server and start the Dagster UI on it"
    )
    demo.add_argument("--port", type=int, default=3000, help="UI port with --serve (3000)")
    demo.add_argument(
        "--api-port",
        type=int,
        metavar="PORT",
        help="with --serve, also serve the REST API (pg-metadata serve) on this port",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run log")
    parser.set_defaults(commands={"extract": ex, "check": check, "serve": srv, "demo": demo})
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported by its subcommand (its usage, a close match)."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        command = args.commands[args.command]
        known = [o for a in command._actions for o in a.option_strings]
        words = []
        for word in unknown:
            close = difflib.get_close_matches(word.split("=")[0], known, n=1)
            words.append(f"{word} (did you mean {close[0]}?)" if close else word)
        command.error(f"unrecognized arguments: {' '.join(words)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse(argv)
    try:
        if args.command == "demo":
            from pg_metadata.cli.demo import demo

            return demo(args)
        if args.command == "serve":
            from pg_metadata.cli.serve import serve

            return serve(args)
        if args.command == "check":
            from pg_metadata.cli.check import check

            return check(args)
        from pg_metadata.cli.extract import extract

        return extract(args)
    except PgMetadataError as exc:
        print(f"pg-metadata: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pg-metadata: interrupted", file=sys.stderr)
        return 130
    finally:
        # export what this process recorded before it exits (no-op when telemetry is off)
        from pg_metadata import telemetry

        telemetry.shutdown()


if __name__ == "__main__":
    sys.exit(main())
