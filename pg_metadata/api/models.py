"""Request bodies in Atlan's own forms, and their translation into a Source.

Credentials come as Atlan's flat object (`host`, `port`, `authType`, `username`, `password`,
`region`, `extra: {database, aws_role_arn, aws_external_id, username}`; `extra` may be a JSON
string), as the v3 list of `{key, value}` pairs, or are replaced by `"source": "<name>"` naming a
configured source. Inline credentials live only in the Source built for one request.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from pg_metadata.catalog.sources import Source

INLINE_SOURCE = "inline"


class Extra(BaseModel):
    """Atlan's `extra`: the first database and the auth mode's own keys."""

    model_config = ConfigDict(extra="ignore")

    database: str | None = None
    aws_role_arn: str | None = None
    aws_external_id: SecretStr | None = None
    username: str | None = None  # iam_user: the database user (Atlan's `username` is the key id)
    sslmode: str | None = None
    sslrootcert: str | None = None


class Credentials(BaseModel):
    """Atlan's flat credential object."""

    model_config = ConfigDict(extra="ignore")

    host: str = Field(min_length=1)
    port: int = Field(default=5432, gt=0, lt=65536)
    authType: Literal["basic", "iam_user", "iam_role"] = "basic"  # Atlan's spelling
    username: str | None = None
    password: SecretStr | None = None
    region: str | None = None
    database: str | None = None  # the UI repeats it at top level on /metadata
    sslmode: str | None = None
    extra: Extra = Field(default_factory=Extra)

    @model_validator(mode="before")
    @classmethod
    def _from_pairs(cls, value: Any) -> Any:
        """Accept the v3 `[{key, value}]` form; `extra.x` keys nest under `extra`."""
        if isinstance(value, list):
            flat: dict[str, Any] = {}
            for pair in value:
                if not isinstance(pair, dict) or "key" not in pair:
                    raise ValueError("each credential pair must be an object {key, value}")
                flat[str(pair["key"])] = pair.get("value")
            value = flat
        if isinstance(value, dict):
            value = dict(value)
            extra = value.get("extra") or {}
            if isinstance(extra, str):
                try:
                    extra = json.loads(extra) if extra.strip() else {}
                except json.JSONDecodeError:
                    raise ValueError("extra must be an object or a JSON object string") from None
            extra = dict(extra)
            for key in [k for k in value if k.startswith("extra.")]:
                extra[key[6:]] = value.pop(key)
            value["extra"] = extra
        return value

    def to_source(self, metadata: Filters | None = None) -> Source:
        """The Source these credentials describe (ConfigError if incomplete)."""
        extra = self.extra
        secret = self.password.get_secret_value() if self.password else None
        common: dict[str, Any] = {
            "name": INLINE_SOURCE,
            "host": self.host,
            "port": self.port,
            "database": extra.database or self.database or "postgres",
            "auth": self.authType,
            "aws_region": self.region,
            "sslmode": extra.sslmode or self.sslmode,
            "sslrootcert": extra.sslrootcert,
            "retries": 0,
        }
        if self.authType == "basic":
            common.update(user=self.username, password=secret)
        elif self.authType == "iam_user":
            # Atlan's app connects as the key id here (its bug); the database user is extra's
            common.update(
                user=extra.username,
                aws_access_key_id=self.username,
                aws_secret_access_key=secret,
            )
        else:
            external = extra.aws_external_id.get_secret_value() if extra.aws_external_id else None
            common.update(user=self.username, role_arn=extra.aws_role_arn, external_id=external)
        source = Source(**common)
        return metadata.apply(source) if metadata is not None else source


class Filters(BaseModel):
    """Atlan's `metadata`: include/exclude filters (JSON strings, as its UI sends) and the
    temp-table regex."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    include_filter: str | dict | None = Field(default=None, alias="include-filter")
    exclude_filter: str | dict | None = Field(default=None, alias="exclude-filter")
    temp_table_regex: str | None = Field(default=None, alias="temp-table-regex")

    def overrides(self) -> dict[str, Any]:
        """The Source fields these filters set (only those given, empty ones as none)."""
        values = {
            "include": self.include_filter,
            "exclude": self.exclude_filter,
            "temp_table_regex": self.temp_table_regex,
        }
        return {k: _blank_as_none(v) for k, v in values.items() if v is not None}

    def apply(self, source: Source) -> Source:
        """The source with these filters instead of its own (validated)."""
        changes = self.overrides()
        return source.replace(**changes) if changes else source


def _blank_as_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in ("", "{}"):
        return None
    if isinstance(value, dict) and not value:
        return None
    return value


class SourceRequest(BaseModel):
    """A body naming a configured source or carrying credentials (the flat form at the top
    level too, as Atlan's UI posts it to /auth)."""

    model_config = ConfigDict(extra="ignore")

    source: str | None = None
    credentials: Credentials | None = None
    metadata: Filters | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_credentials(cls, value: Any) -> Any:
        if isinstance(value, dict) and "credentials" not in value and "host" in value:
            return {"credentials": value, "source": value.get("source")}
        return value

    @model_validator(mode="after")
    def _one_of(self) -> SourceRequest:
        if (self.source is None) == (self.credentials is None):
            raise ValueError("give either source (a configured source's name) or credentials")
        return self


class Connection(BaseModel):
    """Atlan's `connection`: the connection's name and qualifiedName for the entities."""

    model_config = ConfigDict(extra="ignore")

    connection_name: str | None = None
    connection_qualified_name: str | None = None


class StartRequest(BaseModel):
    """POST /start: which configured source, which databases, optional filter overrides."""

    model_config = ConfigDict(extra="ignore")

    source: str = Field(min_length=1)
    databases: list[str] | None = None
    metadata: Filters | None = None
    connection: Connection | None = None
    workflow_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, value: Any) -> Any:
        if isinstance(value, dict) and ("credentials" in value or "credential_guid" in value):
            raise ValueError(
                "/start runs configured sources only (their secrets are referenced by "
                "environment variable); inline credentials are never stored: name a source"
            )
        return value

    @field_validator("databases")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not all(isinstance(v, str) and v for v in value)):
            raise ValueError("databases must be a non-empty list of database names")
        return value


class ConfigUpdate(BaseModel):
    """POST /config/{id}: what a later /start of the workflow runs with."""

    model_config = ConfigDict(extra="forbid")

    databases: list[str] | None = None
    metadata: Filters | None = None
    connection: Connection | None = None
