"""Dagster resources: the source server, the extraction settings, and the output target."""

from __future__ import annotations

import os
import time
from typing import Any

import dagster as dg
import psycopg2.extensions
import sqlalchemy as sa
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from pg_metadata.atlan.entities import AtlanContext
from pg_metadata.catalog.auth import AuthMode, AwsAuthSettings, IamTokenHook
from pg_metadata.catalog.connection import CredentialHook, connect, create_engine
from pg_metadata.catalog.filters import CatalogFilter
from pg_metadata.catalog.settings import DEFAULT_APPLICATION_NAME, ConnectionSettings
from pg_metadata.errors import ConfigError
from pg_metadata.output.storage import (
    DEFAULT_TARGET,
    LocalStore,
    ObjectStore,
    S3Store,
    parse_target,
)


class PostgresResource(dg.ConfigurableResource):
    """The source PostgreSQL server. Unset fields fall back to the libpq variables (PGHOST...).

    Pass secrets with ``dg.EnvVar``; when ``password`` is unset, libpq reads PGPASSWORD or
    ~/.pgpass itself, so the password never enters Dagster's config.
    """

    host: str | None = Field(default=None, description="Server host (PGHOST)")
    port: int | None = Field(default=None, description="Server port (PGPORT)")
    user: str | None = Field(default=None, description="Database user (PGUSER)")
    password: str | None = Field(
        default=None, description="Password; use EnvVar. Default: PGPASSWORD / ~/.pgpass"
    )
    database: str | None = Field(
        default=None, description="First database to connect to (PGDATABASE, default postgres)"
    )
    sslmode: str | None = Field(default=None, description="libpq sslmode (PGSSLMODE)")
    sslrootcert: str | None = Field(default=None, description="CA bundle (PGSSLROOTCERT)")
    application_name: str = Field(default=DEFAULT_APPLICATION_NAME)
    connect_timeout_s: int = Field(default=10)
    statement_timeout_ms: int = Field(default=300_000, description="Per catalog query")
    lock_timeout_ms: int = Field(default=5_000)
    query_connections: int | None = Field(
        default=None,
        description="Connections per database (PG_METADATA_QUERY_CONNECTIONS, default 2): 2 "
        "runs the column query beside the others in one exported snapshot, as pg_dump -j does; "
        "1 keeps to a single connection",
    )
    retries: int = Field(
        default=3, description="Retries (2s, 4s, 8s... apart) when the server is unreachable"
    )
    auth: str | None = Field(
        default=None, description="basic (default), iam_user or iam_role (PG_METADATA_AUTH)"
    )
    aws_region: str | None = Field(
        default=None, description="PG_METADATA_AWS_REGION, else AWS_REGION, else the RDS host"
    )
    aws_access_key_id: str | None = Field(default=None, description="Default: AWS chain")
    aws_secret_access_key: str | None = Field(default=None, description="Use EnvVar")
    aws_session_token: str | None = Field(default=None, description="Use EnvVar")
    aws_profile: str | None = Field(default=None, description="Named AWS profile")
    role_arn: str | None = Field(default=None, description="iam_role: PG_METADATA_ROLE_ARN")
    external_id: str | None = Field(default=None, description="PG_METADATA_EXTERNAL_ID")
    role_session_name: str | None = Field(
        default=None, description="PG_METADATA_ROLE_SESSION_NAME (default pg_metadata)"
    )

    _hook: Any = PrivateAttr(default=None)

    def auth_settings(self) -> AwsAuthSettings:
        """Resolved auth settings (config over PG_METADATA_* variables)."""
        return AwsAuthSettings.from_env(
            os.environ,
            mode=self.auth,
            region=self.aws_region,
            access_key_id=self.aws_access_key_id,
            secret_access_key=self.aws_secret_access_key,
            session_token=self.aws_session_token,
            profile=self.aws_profile,
            role_arn=self.role_arn,
            external_id=self.external_id,
            role_session_name=self.role_session_name,
        )

    def settings(self) -> ConnectionSettings:
        """Resolved connection settings (config over libpq variables).

        IAM modes default to sslmode=require: RDS refuses IAM tokens in clear text.
        """
        settings = self._libpq_settings()
        if settings.sslmode is None and self.auth_settings().mode is not AuthMode.BASIC:
            settings = settings.replace(sslmode="require")
        return settings

    def validate(self) -> None:
        """Check the connection and auth settings before any work starts."""
        self.connections_per_database()
        self.auth_settings().validate(self.settings())

    def connections_per_database(self) -> int:
        """1 or 2 (config over PG_METADATA_QUERY_CONNECTIONS)."""
        value = self.query_connections
        if value is None:
            value = os.environ.get("PG_METADATA_QUERY_CONNECTIONS") or "2"
        if str(value) not in ("1", "2"):
            raise ConfigError(
                f"query connections {value!r} (PG_METADATA_QUERY_CONNECTIONS) must be 1 or 2"
            )
        return int(value)

    def _libpq_settings(self) -> ConnectionSettings:
        return ConnectionSettings.from_env(
            os.environ,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            sslmode=self.sslmode,
            sslrootcert=self.sslrootcert,
            application_name=self.application_name,
            connect_timeout_s=self.connect_timeout_s,
            statement_timeout_ms=self.statement_timeout_ms,
            lock_timeout_ms=self.lock_timeout_ms,
        )

    def connect(self, database: str | None = None) -> psycopg2.extensions.connection:
        """A new read-only connection to one database (the first database by default)."""
        settings = self.settings()
        return connect(settings, database, self.credential_hook(), self.auth_settings().mode.value)

    def engine(self, database: str | None = None, **kwargs: Any) -> sa.Engine:
        """A SQLAlchemy engine with the same settings; fresh IAM token per connection."""
        return create_engine(self.settings(), database, self.credential_hook(), **kwargs)

    def credential_hook(self) -> CredentialHook | None:
        """None for basic auth; for IAM, one token signer per resource (role cached)."""
        auth = self.auth_settings()
        if auth.mode is AuthMode.BASIC:
            return None
        if self._hook is None:
            settings = self.settings()
            auth.validate(settings)
            self._hook = IamTokenHook(auth, settings.host)
        return self._hook


_CATALOG_ENV = {
    "include_filter": "PG_METADATA_INCLUDE",
    "exclude_filter": "PG_METADATA_EXCLUDE",
    "temp_table_regex": "PG_METADATA_TEMP_TABLE_REGEX",
    "connection_qualified_name": "ATLAN_CONNECTION_QUALIFIED_NAME",
    "connection_name": "ATLAN_CONNECTION_NAME",
    "tenant_id": "ATLAN_TENANT_ID",
}


class CatalogSettings(dg.ConfigurableResource):
    """What to extract and how to name it in Atlan."""

    include_filter: str = Field(default="", description='e.g. {"^shop$": ["^sales$"]}')
    exclude_filter: str = Field(default="", description='e.g. {"^shop$": ["^scratch$"]}')
    temp_table_regex: str = Field(default="", description="Relation names to skip, e.g. ^tmp_")
    connection_qualified_name: str = Field(default="default/postgres/0")
    connection_name: str = Field(default="postgres")
    tenant_id: str = Field(default="default")

    @classmethod
    def from_env(cls, **overrides: str | None) -> CatalogSettings:
        """Settings from PG_METADATA_* and ATLAN_* variables, then non-None overrides."""
        values = {
            field: os.environ[var] for field, var in _CATALOG_ENV.items() if var in os.environ
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def catalog_filter(self) -> CatalogFilter:
        """Validated filters; raises ConfigError with a one-line message."""
        return CatalogFilter.parse(self.include_filter, self.exclude_filter, self.temp_table_regex)

    def atlan_context(self, run_id: str = "", workflow: str = "pg_metadata", run_at_ms: int = 0):
        """The naming context for entities of one run."""
        return AtlanContext(
            connection_qualified_name=self.connection_qualified_name,
            connection_name=self.connection_name,
            tenant_id=self.tenant_id,
            workflow_name=workflow,
            run_id=run_id,
            run_at_ms=run_at_ms or int(time.time() * 1000),
        )

    def validate(self) -> None:
        """Check everything before any work starts."""
        self.catalog_filter()
        self.atlan_context()


class OutputTarget(dg.ConfigurableResource):
    """Where files go: a local folder or s3://bucket/prefix (PG_METADATA_OUTPUT)."""

    target: str = Field(default=DEFAULT_TARGET, description="Folder or s3://bucket/prefix")
    s3: S3Resource = Field(default_factory=S3Resource)

    _store: Any = PrivateAttr(default=None)

    def store(self) -> ObjectStore:
        """The object store for this target (one S3 client per resource, not per call)."""
        if self._store is None:
            kind, location, prefix = parse_target(self.target)
            if kind == "s3":
                self._store = S3Store(self.s3.get_client(), location, prefix)
            else:
                self._store = LocalStore(location)
        return self._store
