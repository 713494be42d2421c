"""Connections to the source server: read-only, time-limited, identified by application_name."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa

from pg_metadata import telemetry
from pg_metadata.catalog.auth import AuthMode, IamTokenHook
from pg_metadata.catalog.datasets import SQL_DIALECT, read_sql
from pg_metadata.catalog.settings import ConnectionSettings
from pg_metadata.errors import SourceConnectionError

if TYPE_CHECKING:
    from pg_metadata.catalog.sources import Source

# Called for every physical connection; returns extra connect kwargs (e.g. a fresh IAM token).
CredentialHook = Callable[[ConnectionSettings, str], dict[str, Any]]


def connect(
    settings: ConnectionSettings,
    database: str | None = None,
    hook: CredentialHook | None = None,
    auth_mode: str = "basic",
) -> psycopg2.extensions.connection:
    """Open one connection whose transactions are READ ONLY REPEATABLE READ."""
    dbname = database or settings.database
    attributes = {
        "db.system.name": "postgresql",
        "db.namespace": dbname,
        "server.address": settings.host,
        "server.port": settings.port,
        "pg_metadata.auth": auth_mode,
    }
    with telemetry.phase("pg_metadata.connect", **attributes):
        kwargs = settings.connect_kwargs(dbname)
        if hook is not None:
            kwargs.update(hook(settings, dbname))
        try:
            conn = psycopg2.connect(**kwargs)
        except psycopg2.OperationalError as exc:
            raise SourceConnectionError(
                describe_connect_error(settings, dbname, exc, auth_mode),
                transient=is_transient(exc),
            ) from None
    try:
        conn.autocommit = True  # the timeouts first, outside any transaction
        apply_session_timeouts(conn, settings)
        conn.autocommit = False
    except psycopg2.Error as exc:
        conn.close()
        raise SourceConnectionError(
            describe_connect_error(settings, dbname, exc, auth_mode),
            transient=is_transient(exc),
        ) from None
    conn.set_session(
        isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
    )
    OPEN_CONNECTIONS.add(conn)
    return conn


SESSION_STATEMENTS = 1  # what `connect` sends on every connection before the caller's own


def apply_session_timeouts(conn: Any, settings: ConnectionSettings) -> None:
    """Set the session's timeouts: ours, or the role's/database's where those are stricter
    (one statement; `conn` is a DB-API connection in autocommit mode)."""
    cur = conn.cursor()
    try:
        cur.execute(read_sql(SQL_DIALECT, "session_timeouts"), settings.session_timeouts())
    finally:
        cur.close()


OPEN_CONNECTIONS: weakref.WeakSet = weakref.WeakSet()  # for cancel_all


def cancel_all() -> int:
    """Cancel the statement running on every open connection (PQcancel, safe from any thread),
    so a stop signal does not wait for a long COPY; returns how many were open."""
    count = 0
    for conn in list(OPEN_CONNECTIONS):
        if not conn.closed:
            count += 1
            with contextlib.suppress(Exception):
                conn.cancel()
    return count


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


def describe_connect_error(
    settings: ConnectionSettings, database: str, exc: Exception, auth_mode: str = "basic"
) -> str:
    """One line: mode, user, host, port, libpq's reason and what to check; never a secret."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if settings.password:
        reason = reason.replace(settings.password, "***")
    lowered = reason.lower()
    tls = any(w in lowered for w in ("ssl", "certificate", "tls", "root cert"))
    if auth_mode != "basic" and ("pam authentication failed" in lowered or "password" in lowered):
        hint = (
            "the IAM token was refused: check that the database user has the rds_iam role, "
            "that the IAM policy allows rds-db:connect for this user and region, and the "
            "AWS credentials"
        )
    elif "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = "check PGUSER and the password (PGPASSWORD, ~/.pgpass or the resource config)"
    elif tls:
        hint = (
            "TLS failed: check PGSSLMODE, that PGSSLROOTCERT is the CA bundle that signed the "
            "server certificate, and that the host name matches the certificate"
        )
    elif "does not exist" in lowered:
        hint = "check the database name (PGDATABASE) and that the role exists"
    elif "timeout" in lowered or "could not connect" in lowered or "connection refused" in lowered:
        hint = "check PGHOST/PGPORT and that the server accepts connections from here"
    else:
        hint = "check the connection settings (PGHOST, PGPORT, PGUSER, PGDATABASE)"
    prefix = "TLS connection failed" if tls else "cannot connect to PostgreSQL"
    return f"{prefix} ({auth_mode}) as {settings.describe(database)}: {reason} ({hint})"


def create_engine(
    settings: ConnectionSettings,
    database: str | None = None,
    hook: CredentialHook | None = None,
    **engine_kwargs: Any,
) -> sa.Engine:
    """A SQLAlchemy engine whose every physical connection gets fresh credentials from hook."""
    dbname = database or settings.database
    connect_args = settings.connect_kwargs(dbname)
    url = sa.URL.create(
        "postgresql+psycopg2",
        username=connect_args.pop("user", None),
        host=connect_args.pop("host", None),
        port=connect_args.pop("port", None),
        database=connect_args.pop("dbname"),
    )
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, **engine_kwargs)

    @sa.event.listens_for(engine, "connect")
    def _timeouts(dbapi_connection, connection_record) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        apply_session_timeouts(dbapi_connection, settings)
        dbapi_connection.autocommit = autocommit

    if hook is not None:

        @sa.event.listens_for(engine, "do_connect")
        def _fresh_credentials(dialect, conn_rec, cargs, cparams) -> None:
            cparams.update(hook(settings, dbname))

    return engine


class Connector:
    """Opens connections to one source; IAM sources share one token signer (role cached)."""

    def __init__(self, source: Source, env: Mapping[str, str] | None = None) -> None:
        self.source = source
        self._env = os.environ if env is None else env
        self._hook: CredentialHook | None = None
        self._hook_lock = threading.Lock()

    def settings(self) -> ConnectionSettings:
        """Connection settings with the password read from the environment now."""
        return self.source.connection_settings(self._env)

    def credential_hook(self) -> CredentialHook | None:
        """None for basic auth; for IAM, one token signer per connector."""
        auth = self.source.auth_settings
        if auth.mode is AuthMode.BASIC:
            return None
        with self._hook_lock:
            if self._hook is None:
                self._hook = IamTokenHook(auth, self.source.host)
            return self._hook

    def connect(self, database: str | None = None) -> psycopg2.extensions.connection:
        """A new read-only connection to one database (the source's first database by default)."""
        return connect(
            self.settings(), database, self.credential_hook(), self.source.auth_settings.mode.value
        )

    def engine(self, database: str | None = None, **kwargs: Any) -> sa.Engine:
        """A SQLAlchemy engine with the same settings; fresh IAM token per connection."""
        return create_engine(self.settings(), database, self.credential_hook(), **kwargs)
