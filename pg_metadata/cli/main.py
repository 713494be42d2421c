"""`pg-metadata`: extract headless, run the demo, or serve the demo in the Dagster UI."""

from __future__ import annotations

import argparse
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
  ATLAN_CONNECTION_QUALIFIED_NAME  e.g. default/postgres/1717000000
  ATLAN_CONNECTION_NAME            e.g. prod-pg
  PG_METADATA_AUTH                 basic (default), iam_user or iam_role (AWS RDS IAM)
  PG_METADATA_AWS_REGION           region for IAM tokens (else AWS_REGION, else the RDS host)
  PG_METADATA_ROLE_ARN / _EXTERNAL_ID / _ROLE_SESSION_NAME   iam_role: the role to assume
  AWS_* / AWS_ENDPOINT_URL         AWS credentials (standard chain), S3/STS endpoint
The password is never an option: use PGPASSWORD, ~/.pgpass or a source's password_env."""


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
    env = os.environ.get
    ex.add_argument("--output", default=env("PG_METADATA_OUTPUT"), help="folder or s3://b/p")
    ex.add_argument(
        "--sources",
        metavar="FILE",
        default=env("PG_METADATA_SOURCES"),
        help="sources file (PG_METADATA_SOURCES); default: one source from the PG* variables",
    )
    ex.add_argument(
        "--source",
        metavar="NAME",
        action="append",
        help="extract only this source of the sources file (repeatable)",
    )
    # unset options fall back to the variables (Source.from_env)
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
        "no server, database or cloud account of your own. With --serve, keeps the server "
        "running and opens the Dagster UI on it until Ctrl-C.",
    )
    demo.add_argument("--output", default=env("PG_METADATA_OUTPUT"), help="folder or s3://b/p")
    demo.add_argument(
        "--serve", action="store_true", help="keep the server and start the Dagster UI on it"
    )
    demo.add_argument("--port", type=int, default=3000, help="UI port with --serve (3000)")
    demo.add_argument("-v", "--verbose", action="store_true", help="show Dagster's run log")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from pg_metadata.cli.demo import demo

            return demo(args)
        from pg_metadata.cli.extract import extract

        return extract(args)
    except PgMetadataError as exc:
        print(f"pg-metadata: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pg-metadata: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
