"""Connections to the source server: read-only, time-limited, identified by application_name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

from pg_metadata.errors import SourceConnectionError
from pg_metadata.settings import ConnectionSettings

# Called for every physical connection; returns extra connect kwargs (e.g. a fresh IAM token).
CredentialHook = Callable[[ConnectionSettings, str], dict[str, Any]]


def connect(
    settings: ConnectionSettings, database: str | None = None, hook: CredentialHook | None = None
) -> psycopg2.extensions.connection:
    """Open one connection whose transactions are READ ONLY REPEATABLE READ."""
    dbname = database or settings.database
    kwargs = settings.connect_kwargs(dbname)
    if hook is not None:
        kwargs.update(hook(settings, dbname))
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as exc:
        raise SourceConnectionError(
            describe_connect_error(settings, dbname, exc), transient=is_transient(exc)
        ) from None
    conn.set_session(
        isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
    )
    return conn


_TRANSIENT = (
    "connection refused",
    "timeout expired",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "server closed the connection unexpectedly",
    "connection reset",
    "too many connections",
    "could not receive data",
    "could not send data",
)


def is_transient(exc: Exception) -> bool:
    """Whether an error is worth retrying: the server restarting, a dropped link, a full pool."""
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT)


def describe_connect_error(settings: ConnectionSettings, database: str, exc: Exception) -> str:
    """One line: where we tried to connect, libpq's reason, and what to check."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    lowered = reason.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = "check PGUSER and the password (PGPASSWORD, ~/.pgpass or the resource config)"
    elif "does not exist" in lowered:
        hint = "check the database name (PGDATABASE) and that the role exists"
    elif "ssl" in lowered or "certificate" in lowered:
        hint = "check PGSSLMODE and PGSSLROOTCERT"
    elif "timeout" in lowered or "could not connect" in lowered or "connection refused" in lowered:
        hint = "check PGHOST/PGPORT and that the server accepts connections from here"
    else:
        hint = "check the connection settings (PGHOST, PGPORT, PGUSER, PGDATABASE)"
    return f"cannot connect to PostgreSQL as {settings.describe(database)}: {reason} ({hint})"
