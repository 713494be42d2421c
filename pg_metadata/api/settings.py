"""Settings of the REST API, validated before it listens."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pg_metadata.errors import ConfigError

TOKEN_ENV = "PG_METADATA_API_TOKEN"
DAGSTER_URL_ENV = "PG_METADATA_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
MAX_BODY_BYTES = 1 << 20


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiSettings:
    """Where the API listens, its token, and the Dagster webserver that launches runs."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    dagster_url: str = DEFAULT_DAGSTER_URL
    output: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port {self.port} is out of range; use 1-65535")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError(f"{TOKEN_ENV} is too short; use at least 16 random characters")
        if not self.token and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: set {TOKEN_ENV} (every "
                "request then needs 'Authorization: Bearer <token>'), or bind to 127.0.0.1"
            )
        parsed = urlparse(self.dagster_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"{DAGSTER_URL_ENV} {self.dagster_url!r} must be the Dagster webserver's URL, "
                "e.g. http://127.0.0.1:3000"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ApiSettings:
        """From PG_METADATA_API_TOKEN, PG_METADATA_DAGSTER_URL and PG_METADATA_OUTPUT."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "token": env.get(TOKEN_ENV) or None,
            "dagster_url": env.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL,
            "output": env.get("PG_METADATA_OUTPUT") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
