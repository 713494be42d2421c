"""Sources: the PostgreSQL servers to extract, as frozen, validated configuration.

A source is one server: where it is, how to authenticate, what to select, how Atlan names it,
how many sessions it may get, and how often to refresh it. Sources come from a sources file
(``PG_METADATA_SOURCES``), from Dagster Components (one per source, same fields), or, with
neither, from the libpq and ``PG_METADATA_*`` variables as one source named ``default``.
Secrets are never part of a source: ``password_env`` names the variable read at connect time.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pg_metadata.catalog.auth import AuthMode, AwsAuthSettings, parse_mode
from pg_metadata.catalog.filters import CatalogFilter
from pg_metadata.catalog.settings import DEFAULT_APPLICATION_NAME, ConnectionSettings
from pg_metadata.errors import ConfigError

DEFAULT_SOURCE = "default"
DEFAULT_CONNECTION_QN = "default/postgres/0"
DEFAULT_CRON = "0 2 * * *"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_connection_qualified_name(qn: str) -> None:
    """Atlan connection qualifiedNames are `<tenant>/<connector>/<epoch>`."""
    parts = qn.split("/") if qn else []
    if len(parts) != 3 or not all(parts):
        raise ConfigError(
            f"connection qualified name {qn!r} must look like 'default/postgres/1717000000' "
            "(ATLAN_CONNECTION_QUALIFIED_NAME)"
        )


@dataclass(frozen=True)
class Source:
    """One PostgreSQL server to extract; validated when built, so errors come before any work."""

    name: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    database: str = "postgres"
    password_env: str | None = None
    password: str | None = field(default=None, repr=False)  # a Component's resolved template
    auth: str = "basic"
    aws_region: str | None = None
    aws_profile: str | None = None
    # explicit AWS keys of an iam_user request to the REST API (never in files: they use the
    # AWS credential chain or a profile)
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    include: str | dict | None = None
    exclude: str | dict | None = None
    temp_table_regex: str | None = None
    connection_qualified_name: str = DEFAULT_CONNECTION_QN
    connection_name: str | None = None
    tenant_id: str = "default"
    max_connections: int | None = None
    query_connections: int = 2
    retries: int = 3
    connect_timeout_s: int = 10
    statement_timeout_ms: int = 300_000
    lock_timeout_ms: int = 5_000
    exact_sizes: bool = False
    schedule: str = DEFAULT_CRON
    schedule_timezone: str = "UTC"
    discovery_interval_s: int = 300
    change_interval_s: int = 300

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"source name {self.name!r} must start with a letter and hold only letters, "
                "digits and underscores (at most 40): it becomes part of asset keys, job, pool "
                "and group names"
            )
        if self.password_env is not None and not _ENV_NAME.match(self.password_env):
            raise ConfigError(
                f"password_env {self.password_env!r} must be the name of an environment "
                "variable (e.g. PROD_PG_PASSWORD), not the password"
            )
        if self.query_connections not in (1, 2):
            raise ConfigError(f"query_connections {self.query_connections!r} must be 1 or 2")
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError(f"max_connections {self.max_connections!r} must be at least 1")
        for name in ("retries", "discovery_interval_s", "change_interval_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        validate_connection_qualified_name(self.connection_qualified_name)
        if self.connection_name == "":
            raise ConfigError("connection_name (ATLAN_CONNECTION_NAME) must not be empty")
        # Everything else checkable offline: filters, TLS/port ranges, auth mode and fields.
        self.catalog_filter  # noqa: B018
        self.auth_settings.validate(self.connection_settings())

    @property
    def atlan_connection_name(self) -> str:
        """The Atlan connection name (defaults to the source name)."""
        return self.connection_name or self.name

    @cached_property
    def catalog_filter(self) -> CatalogFilter:
        """The validated include/exclude/temp-table filters."""
        return CatalogFilter.parse(self.include, self.exclude, self.temp_table_regex)

    def sql_params(self) -> dict[str, Any]:
        """Bind parameters of every catalog query: the filters, and exact_sizes."""
        return {**self.catalog_filter.sql_params(), "exact_sizes": self.exact_sizes}

    @cached_property
    def auth_settings(self) -> AwsAuthSettings:
        """How to authenticate (basic, iam_user or iam_role)."""
        return AwsAuthSettings(
            mode=parse_mode(self.auth),
            region=self.aws_region,
            profile=self.aws_profile,
            access_key_id=self.aws_access_key_id,
            secret_access_key=self.aws_secret_access_key,
            role_arn=self.role_arn,
            external_id=self.external_id,
            role_session_name=self.role_session_name or DEFAULT_APPLICATION_NAME,
        )

    def connection_settings(self, env: Mapping[str, str] | None = None) -> ConnectionSettings:
        """libpq settings; the password is read from `password_env` now, never stored.

        IAM modes default to sslmode=require: RDS refuses IAM tokens in clear text.
        """
        password = self.password
        if self.password_env is not None and env is not None:
            password = env.get(self.password_env)
            if password is None:
                raise ConfigError(
                    f"source {self.name!r}: the variable {self.password_env} (password_env) is "
                    "not set in this process's environment"
                )
        sslmode = self.sslmode
        if sslmode is None and parse_mode(self.auth) is not AuthMode.BASIC:
            sslmode = "require"
        return ConnectionSettings(
            host=self.host,
            port=self.port,
            user=self.user,
            database=self.database,
            password=password,
            sslmode=sslmode,
            sslrootcert=self.sslrootcert,
            connect_timeout_s=self.connect_timeout_s,
            statement_timeout_ms=self.statement_timeout_ms,
            lock_timeout_ms=self.lock_timeout_ms,
        )

    @property
    def connections_per_database(self) -> int:
        """Sessions one database's extraction opens: 2 (one shared snapshot) or 1."""
        return min(self.query_connections, self.max_connections or 2)

    @property
    def pool_slots(self) -> int | None:
        """Concurrent source steps allowed so that `max_connections` holds (None: no cap)."""
        if self.max_connections is None:
            return None
        return max(1, self.max_connections // self.connections_per_database)

    def describe(self) -> str:
        """`user@host:port/database` for messages; never a secret."""
        settings = ConnectionSettings(
            host=self.host, port=self.port, user=self.user, database=self.database
        )
        return settings.describe()

    def replace(self, **changes: Any) -> Source:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, name: str = DEFAULT_SOURCE, **overrides: Any
    ) -> Source:
        """The source the libpq, PG_METADATA_* and ATLAN_* variables describe, then overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var, key in _ENV_FIELDS.items():
            text = env.get(var)
            if text:
                values[key] = _env_value(var, key, text)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(name=name, **values)


_ENV_FIELDS = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGDATABASE": "database",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PG_METADATA_AUTH": "auth",
    "PG_METADATA_AWS_REGION": "aws_region",
    "PG_METADATA_ROLE_ARN": "role_arn",
    "PG_METADATA_EXTERNAL_ID": "external_id",
    "PG_METADATA_ROLE_SESSION_NAME": "role_session_name",
    "PG_METADATA_INCLUDE": "include",
    "PG_METADATA_EXCLUDE": "exclude",
    "PG_METADATA_TEMP_TABLE_REGEX": "temp_table_regex",
    "ATLAN_CONNECTION_QUALIFIED_NAME": "connection_qualified_name",
    "ATLAN_CONNECTION_NAME": "connection_name",
    "ATLAN_TENANT_ID": "tenant_id",
    "PG_METADATA_QUERY_CONNECTIONS": "query_connections",
    "PG_METADATA_MAX_CONNECTIONS": "max_connections",
    "PG_METADATA_RETRIES": "retries",
    "PG_METADATA_SCHEDULE": "schedule",
    "PG_METADATA_SCHEDULE_TIMEZONE": "schedule_timezone",
    "PG_METADATA_DISCOVERY_INTERVAL": "discovery_interval_s",
    "PG_METADATA_CHANGE_INTERVAL": "change_interval_s",
    "PG_METADATA_EXACT_SIZES": "exact_sizes",
    "PG_METADATA_STATEMENT_TIMEOUT_MS": "statement_timeout_ms",
    "PG_METADATA_LOCK_TIMEOUT_MS": "lock_timeout_ms",
}
_FIELDS = {f.name: f for f in dataclasses.fields(Source)}
_INT_FIELDS = frozenset(
    n for n, f in _FIELDS.items() if f.type in ("int", "int | None") and n != "name"
)


_BOOL_FIELDS = frozenset(n for n, f in _FIELDS.items() if f.type == "bool")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _env_value(var: str, key: str, text: str) -> Any:
    if key in _BOOL_FIELDS:
        if text.lower() not in _TRUE + _FALSE:
            raise ConfigError(f"{var} {text!r} must be one of on/off, true/false, 1/0")
        return text.lower() in _TRUE
    if key not in _INT_FIELDS:
        return text
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{var} {text!r} is not a whole number") from None


# Keys of a sources-file entry: every Source field but the secrets (files hold none).
_IN_MEMORY_ONLY = ("password", "aws_access_key_id", "aws_secret_access_key")
FILE_KEYS = tuple(n for n in _FIELDS if n not in _IN_MEMORY_ONLY)
REQUIRED_KEYS = ("name", "host", "user", "connection_qualified_name")


def source_from_mapping(
    data: Any, where: str, *, allow_password: bool = False, required: Sequence[str] = REQUIRED_KEYS
) -> Source:
    """A Source from one mapping (a sources-file entry or a Component's attributes).

    `where` names the file and entry for messages, e.g. "sources.yaml, source 'prod'".
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: each source must be a mapping of keys, got {data!r}")
    allowed = FILE_KEYS + (("password",) if allow_password else ())
    for key in data:
        if key == "password" and not allow_password:
            raise ConfigError(
                f"{where}: a sources file holds no passwords; write the variable's name as "
                "password_env: PROD_PG_PASSWORD and set that variable where the code runs"
            )
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for key in required:
        if data.get(key) in (None, ""):
            raise ConfigError(f"{where}: missing required key {key!r}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key in _INT_FIELDS:
            value = _whole_number(value, f"{where}: {key}")
        if key in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
            values[key] = value
            continue
        if key in ("include", "exclude") and not isinstance(value, str | dict):
            raise ConfigError(f"{where}: {key} must be a mapping or a JSON string")
        text_key = key not in _INT_FIELDS and key not in ("include", "exclude")
        if text_key and not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        values[key] = value
    try:
        return Source(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _whole_number(value: Any, what: str) -> int:
    """An int, or a string of digits (as `{{ env.PORT }}` templates resolve)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    return value


def check_fleet(sources: Sequence[Source], where: str) -> None:
    """Names must be unique, and so must Atlan connections (each server is its own connection)."""
    seen: dict[str, int] = {}
    qns: dict[str, str] = {}
    for i, source in enumerate(sources, start=1):
        if source.name in seen:
            raise ConfigError(
                f"{where}: source name {source.name!r} appears twice (entries {seen[source.name]} "
                f"and {i}); every source needs its own name"
            )
        seen[source.name] = i
        qn = source.connection_qualified_name
        if qn in qns:
            raise ConfigError(
                f"{where}: sources {qns[qn]!r} and {source.name!r} share the Atlan connection "
                f"{qn!r}; give each server its own connection_qualified_name"
            )
        qns[qn] = source.name


def load_sources_file(path: str | Path) -> list[Source]:
    """Every source of a sources file (YAML: `sources: [ {name: ..., host: ...}, ... ]`)."""
    import yaml  # only needed when a file is used

    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"sources file {path}: {exc.strerror or exc} (check PG_METADATA_SOURCES / --sources)"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"sources file {path}: not valid YAML{at}") from None
    if not isinstance(doc, Mapping) or set(doc) != {"sources"}:
        raise ConfigError(f"sources file {path}: expected one top-level key 'sources' (a list)")
    entries = doc["sources"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"sources file {path}: 'sources' must be a non-empty list")
    sources = []
    for i, entry in enumerate(entries, start=1):
        label = entry.get("name") if isinstance(entry, Mapping) else None
        where = (
            f"sources file {path}, source {label!r}" if label else f"sources file {path}, entry {i}"
        )
        sources.append(source_from_mapping(entry, where))
    check_fleet(sources, f"sources file {path}")
    return sources


def select_sources(sources: Sequence[Source], names: Sequence[str] | None) -> list[Source]:
    """The sources with the given names (all when none are given); unknown names are errors."""
    if not names:
        return list(sources)
    by_name = {s.name: s for s in sources}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            f"unknown source {unknown[0]!r}; configured: {', '.join(by_name) or 'none'}"
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def configured_sources(env: Mapping[str, str] | None = None) -> list[Source]:
    """The sources of PG_METADATA_SOURCES if set, else the `default` source of the variables."""
    env = os.environ if env is None else env
    path = env.get("PG_METADATA_SOURCES")
    if path:
        return load_sources_file(path)
    return [Source.from_env(env)]
