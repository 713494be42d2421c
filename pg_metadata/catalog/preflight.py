"""Preflight: can this source be extracted, as configured, right now? And what does it have?

Each check is `{name, passed, message}`; the report is ready when every check passed. The same
checks back `pg-metadata check` and the REST API's `/check`. Every query is a small read of the
catalog (`sql/postgres/*.sql`) on short read-only connections, one at a time, so a preflight
never holds more than two sessions on the server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from pg_metadata.catalog.connection import Connector
from pg_metadata.catalog.datasets import Dataset
from pg_metadata.catalog.filters import CatalogFilter, unanchor
from pg_metadata.catalog.reader import query_rows
from pg_metadata.catalog.sources import Source
from pg_metadata.errors import ConfigError, PgMetadataError

MIN_VERSION_ENV = "PG_METADATA_MIN_SERVER_VERSION"
DEFAULT_MIN_VERSION = "10"

SERVER_INFO = Dataset("server_info", "Server version, role and database.", ())
VISIBLE_DATABASES = Dataset("visible_databases", "Every extractable database, unfiltered.", ())
VISIBLE_SCHEMAS = Dataset("visible_schemas", "Non-system schemas of a database, unfiltered.", ())
TABLE_COUNT = Dataset("table_count", "Relations of a database the filters select.", ())
RULE_MATCHES = Dataset("rule_matches", "Which include rules match something visible.", ())
CHECK_PATTERNS = Dataset("check_patterns", "Every filter regex, compiled by the server.", ())

# Atlan's check names (its /check reply has one key per check: `<name>Check`)
CREDENTIALS = "credentials"
VERSION = "version"
DATABASE_SCHEMA = "databaseSchema"
FILTERS = "filters"
CONNECT = "connect"
SNAPSHOT = "snapshotExport"
TABLES = "tables"
OUTPUT = "output"


@dataclass(frozen=True)
class Check:
    """The outcome of one preflight check."""

    name: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        """`{name, passed, message}`."""
        return {"name": self.name, "passed": self.passed, "message": self.message}


@dataclass
class Report:
    """Every check of one preflight, in order."""

    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ready(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, message: str) -> None:
        self.checks.append(Check(name, passed, message))

    def as_dict(self) -> dict[str, Any]:
        """`{status: ready|not_ready, checks: [...], total_duration_ms}`."""
        return {
            "status": "ready" if self.ready else "not_ready",
            "checks": [c.as_dict() for c in self.checks],
            "total_duration_ms": round(self.seconds * 1000),
        }

    def failures(self) -> list[Check]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c.passed]


def min_version(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The minimum server version (PG_METADATA_MIN_SERVER_VERSION, default 10) as (major, minor)."""
    env = os.environ if env is None else env
    text = (env.get(MIN_VERSION_ENV) or DEFAULT_MIN_VERSION).strip()
    parts = text.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ConfigError(
            f"{MIN_VERSION_ENV}={text!r} is not a version; use e.g. 10 or 9.6"
        ) from None
    return major, minor


def version_number(major: int, minor: int) -> int:
    """server_version_num of a version: 90600 for 9.6, 100000 for 10 (minor releases ignored
    from 10 on, as PostgreSQL numbers them)."""
    return major * 10000 + (minor * 100 if major < 10 else 0)


def check_patterns(conn: Any, catalog_filter: CatalogFilter) -> None:
    """Compile every filter regex with PostgreSQL's engine (it runs them); ConfigError naming
    the first invalid one and the server's reason. One statement when all are valid."""
    patterns = list(catalog_filter.patterns())
    if not patterns:
        return
    try:
        query_rows(conn, CHECK_PATTERNS, {"patterns": [p for p, _ in patterns]})
        return
    except PgMetadataError as exc:
        if "regular expression" not in str(exc):
            raise
    for pattern, what in patterns:  # only after a failure: which one
        try:
            query_rows(conn, CHECK_PATTERNS, {"patterns": [pattern]})
        except PgMetadataError as exc:
            reason = str(exc).split("invalid regular expression:", 1)[-1].split("(")[0].strip()
            raise ConfigError(
                f"{what} is not a valid regular expression for PostgreSQL: {reason}"
            ) from None


def check_source_patterns(source: Source) -> None:
    """`check_patterns` on a connection of its own to the source's first database; an
    unreachable server is left for the run to report (with its retries)."""
    if not any(source.catalog_filter.patterns()):
        return
    try:
        conn = Connector(source).connect()
    except PgMetadataError:
        return
    try:
        check_patterns(conn, source.catalog_filter)
    finally:
        conn.close()


@dataclass
class _Session:
    """One connection at a time to a source's databases."""

    connector: Connector

    def rows(self, dataset: Dataset, params: Mapping[str, Any], database: str | None = None):
        return self.rows_in(database, (dataset, params))[0]

    def rows_in(self, database: str | None, *queries: tuple[Dataset, Mapping[str, Any]]):
        """The rows of each query, on one connection to `database`."""
        conn = self.connector.connect(database)
        try:
            return [query_rows(conn, dataset, dict(params)) for dataset, params in queries]
        finally:
            conn.close()


def list_schemas(source: Source, connector: Connector | None = None) -> list[dict[str, str]]:
    """Every (database, schema) the role can see, unfiltered, as Atlan's `/metadata` lists them:
    `[{TABLE_CATALOG, TABLE_SCHEMA}]`, across every database it may connect to."""
    session = _Session(connector or Connector(source))
    found = []
    for db in session.rows(VISIBLE_DATABASES, source.sql_params()):
        if db["can_connect"]:
            for row in session.rows(VISIBLE_SCHEMAS, {}, db["database_name"]):
                found.append(
                    {"TABLE_CATALOG": row["database_name"], "TABLE_SCHEMA": row["schema_name"]}
                )
    return found


def run_preflight(
    source: Source,
    connector: Connector | None = None,
    output: Callable[[], str] | None = None,
    extra: Iterable[Callable[[], Check]] = (),
    env: Mapping[str, str] | None = None,
) -> Report:
    """Every check for one source. `output` probes the output target (returns a description,
    raises PgMetadataError); `extra` adds checks of the calling layer (the Dagster instance)."""
    started = time.perf_counter()
    report = Report()
    session = _Session(connector or Connector(source))
    params = source.sql_params()
    try:
        _server_checks(report, source, session, params, env)
    finally:
        if output is not None:
            try:
                report.add(OUTPUT, True, output())
            except PgMetadataError as exc:
                report.add(OUTPUT, False, str(exc))
        for check in extra:
            report.checks.append(check())
        report.seconds = time.perf_counter() - started
    return report


def _server_checks(
    report: Report,
    source: Source,
    session: _Session,
    params: dict[str, Any],
    env: Mapping[str, str] | None,
) -> None:
    try:
        conn = session.connector.connect()
    except PgMetadataError as exc:
        report.add(CREDENTIALS, False, str(exc))
        for name in (VERSION, FILTERS, DATABASE_SCHEMA, CONNECT, SNAPSHOT, TABLES):
            report.add(name, False, "not checked: the credentials check failed")
        return
    try:
        (info,) = query_rows(conn, SERVER_INFO, {})
        report.add(
            CREDENTIALS,
            True,
            f"Authentication successful as {info['role_name']} on {source.describe()} "
            f"({source.auth_settings.mode.value})",
        )
        _version_check(report, info, env)
        try:
            check_patterns(conn, source.catalog_filter)
        except ConfigError as exc:
            report.add(FILTERS, False, str(exc))
            for name in (DATABASE_SCHEMA, CONNECT, SNAPSHOT, TABLES):
                report.add(name, False, "not checked: the filters check failed")
            return
        report.add(FILTERS, True, "every filter regex compiles in PostgreSQL's engine")
        visible = query_rows(conn, VISIBLE_DATABASES, params)
        # what databases.sql selects: connectable and chosen by the filters
        selected = [
            d["database_name"] for d in visible if d["can_connect"] and d["selected_by_filters"]
        ]
        _snapshot_check(report, source, conn)
    finally:
        conn.close()
    reachable, counts, schemas = [], {}, []
    for db in selected:
        try:
            found, (row,) = session.rows_in(db, (VISIBLE_SCHEMAS, {}), (TABLE_COUNT, params))
            schemas += found
        except PgMetadataError as exc:
            report.add(CONNECT, False, str(exc))
            continue
        reachable.append(db)
        counts[db] = row["table_count"]
    _database_schema_check(report, source, session, params, visible, selected, schemas)
    _connect_check(report, source, visible, selected, reachable)
    _tables_check(report, counts)


def _version_check(report: Report, info: Mapping[str, Any], env: Mapping[str, str] | None) -> None:
    major, minor = min_version(env)
    wanted = f"{major}.{minor}" if minor or major < 10 else str(major)
    version = str(info["version"]).split()[0]
    if info["version_num"] >= version_number(major, minor):
        report.add(
            VERSION, True, f"Server version {version} meets minimum required version {wanted}"
        )
    else:
        report.add(
            VERSION,
            False,
            f"Server version {version} is older than the minimum {wanted} "
            f"({MIN_VERSION_ENV}); upgrade the server or lower the minimum",
        )


def _database_schema_check(
    report: Report,
    source: Source,
    session: _Session,
    params: dict[str, Any],
    visible: list[dict[str, Any]],
    selected: list[str],
    schemas: list[dict[str, Any]],
) -> None:
    rules = source.catalog_filter.include
    if not rules:
        report.add(
            DATABASE_SCHEMA,
            True,
            f"Schemas and Databases check successful: no include filter, so every database "
            f"the role can connect to ({len(selected)}) and their {len(schemas)} schemas",
        )
        return
    seen = [(s["database_name"], s["schema_name"]) for s in schemas if s["can_use"]]
    seen += [(d["database_name"], None) for d in visible]
    matches = session.rows(
        RULE_MATCHES,
        {
            **params,
            "seen_db": [db for db, _ in seen],
            "seen_schema": [sch for _, sch in seen],
        },
    )
    missing = []
    for rule, match in zip(rules, matches, strict=True):
        db = unanchor(rule.database)
        if not match["database_found"]:
            missing.append(f"database {db}")
        elif not rule.all_schemas and not match["schema_found"]:
            missing.append(f"schema {unanchor(rule.schema)} of database {db}")
    if missing:
        report.add(
            DATABASE_SCHEMA,
            False,
            f"Schemas and Databases check failed for {', '.join(missing)}: nothing the role "
            "can see matches (check the include filter, the CONNECT and USAGE privileges)",
        )
    else:
        report.add(
            DATABASE_SCHEMA,
            True,
            f"Schemas and Databases check successful: every include rule matches "
            f"({len(selected)} database(s), {len(seen) - len(visible)} visible schema(s))",
        )


def _connect_check(
    report: Report,
    source: Source,
    visible: list[dict[str, Any]],
    selected: list[str],
    reachable: list[str],
) -> None:
    if any(c.name == CONNECT for c in report.checks):
        return  # a selected database refused the connection; that check says which
    # without an include filter the role extracts what it may connect to; with one, a
    # database it names but may not connect to is a mistake to report
    denied = [
        d["database_name"]
        for d in visible
        if source.catalog_filter.include and d["selected_by_filters"] and not d["can_connect"]
    ]
    if denied:
        report.add(
            CONNECT,
            False,
            f"the role may not CONNECT to {', '.join(denied)} (GRANT CONNECT ON DATABASE ... "
            f"TO {source.user or 'the extractor role'})",
        )
    elif not selected:
        report.add(CONNECT, False, "no database matches the filters; nothing would be extracted")
    else:
        report.add(
            CONNECT, True, f"connected to {len(reachable)} database(s): {', '.join(reachable)}"
        )


def _snapshot_check(report: Report, source: Source, conn: Any) -> None:
    if source.connections_per_database == 1:
        report.add(SNAPSHOT, True, "not needed: each database is read on one connection")
        return
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_export_snapshot()")
        conn.rollback()
        report.add(
            SNAPSHOT, True, "allowed: each database is read on 2 connections sharing one snapshot"
        )
    except psycopg2.Error as exc:
        conn.rollback()
        reason = " ".join((exc.pgerror or str(exc)).split())
        report.add(
            SNAPSHOT,
            True,
            f"refused ({reason}): the run will read each database on one connection",
        )


def _tables_check(report: Report, counts: dict[str, int]) -> None:
    total = sum(counts.values())
    per_db = ", ".join(f"{db} {n}" for db, n in counts.items())
    message = f"Tables check successful. Table count: {total}"
    if per_db:
        message += f" ({per_db})"
    if not total:
        message += "; no relation matches the filters"
    report.add(TABLES, True, message)
