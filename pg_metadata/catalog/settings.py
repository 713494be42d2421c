"""Connection settings for the source server: a frozen value object, testable without a database."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pg_metadata.errors import ConfigError

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_APPLICATION_NAME = "pg_metadata"


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where and how to connect; renders libpq connection arguments for one database.

    Unset fields fall through to libpq's own defaults and variables (PGPASSWORD, ~/.pgpass,
    PGSERVICE...), so a password never has to pass through this object.
    """

    host: str | None = None
    port: int | None = None
    user: str | None = None
    database: str = "postgres"
    password: str | None = field(default=None, repr=False)
    sslmode: str | None = None
    sslrootcert: str | None = None
    application_name: str = DEFAULT_APPLICATION_NAME
    connect_timeout_s: int = 10
    statement_timeout_ms: int = 300_000
    lock_timeout_ms: int = 5_000
    idle_in_transaction_timeout_ms: int = 60_000
    work_mem: str = "64MB"  # sorts and hashes of million-row catalog queries stay in memory

    def __post_init__(self) -> None:
        if self.sslmode is not None and self.sslmode not in SSL_MODES:
            raise ConfigError(
                f"sslmode {self.sslmode!r} (PGSSLMODE) is not valid; "
                f"use one of {', '.join(SSL_MODES)}"
            )
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is out of range; use 1-65535 (PGPORT)")
        for name in (
            "connect_timeout_s",
            "statement_timeout_ms",
            "lock_timeout_ms",
            "idle_in_transaction_timeout_ms",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> ConnectionSettings:
        """Read the standard libpq variables, then apply non-None overrides."""
        port = env.get("PGPORT")
        values: dict[str, Any] = {
            "host": env.get("PGHOST") or None,
            "port": _parse_port(port) if port else None,
            "user": env.get("PGUSER") or None,
            "database": env.get("PGDATABASE") or "postgres",
            "sslmode": env.get("PGSSLMODE") or None,
            "sslrootcert": env.get("PGSSLROOTCERT") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> ConnectionSettings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def display_host(self) -> str:
        """Host for messages; libpq's default is the local socket."""
        return self.host or "localhost"

    @property
    def display_port(self) -> int:
        """Port for messages; libpq's default is 5432."""
        return self.port or 5432

    def describe(self, database: str | None = None) -> str:
        """`user@host:port/database` for logs and errors; never includes a secret."""
        user = self.user or "<libpq default user>"
        return f"{user}@{self.display_host}:{self.display_port}/{database or self.database}"

    def connect_kwargs(self, database: str | None = None) -> dict[str, Any]:
        """Keyword arguments for psycopg2.connect for one database (password only if set)."""
        kwargs: dict[str, Any] = {
            "dbname": database or self.database,
            "application_name": self.application_name,
            "connect_timeout": self.connect_timeout_s,
            "options": self.session_options(),
        }
        for name in ("host", "port", "user", "password", "sslmode", "sslrootcert"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs

    def session_options(self) -> str:
        """Server settings sent at connection start. The timeouts are not among them: a
        startup option would override a stricter one set on the role or database, so they
        are set by the session's first statement instead (`session_timeouts`)."""
        return f"-c work_mem={self.work_mem}"

    def session_timeouts(self) -> dict[str, int]:
        """Our timeouts in milliseconds (0: none), by server setting name; the session keeps
        the stricter of each and the role's or database's own."""
        return {
            "statement_timeout": self.statement_timeout_ms,
            "lock_timeout": self.lock_timeout_ms,
            "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout_ms,
        }


def _parse_port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"PGPORT {text!r} is not a number; set it to the server port") from None
