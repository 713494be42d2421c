"""Authentication modes of the source server: basic, or AWS RDS IAM (as a user or a role).

IAM tokens are signed per physical connection (a token is checked only when a connection opens
and is valid for 15 minutes), from credentials that are re-assumed before they expire.
Dagster-free; the clock is injectable so token freshness can be tested.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions

from pg_metadata.catalog.settings import ConnectionSettings
from pg_metadata.errors import ConfigError, SourceConnectionError

Clock = Callable[[], dt.datetime]
TOKEN_LIFETIME_S = 900
REFRESH_MARGIN = dt.timedelta(minutes=5)
_RDS_HOST = re.compile(
    r"\.(?P<region>[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d+)\.rds\.amazonaws\.com(?:\.cn)?\.?$"
)


class AuthMode(StrEnum):
    """How the extractor authenticates to PostgreSQL (PG_METADATA_AUTH)."""

    BASIC = "basic"
    IAM_USER = "iam_user"
    IAM_ROLE = "iam_role"


def utc_now() -> dt.datetime:
    """The real clock."""
    return dt.datetime.now(dt.UTC)


def region_from_host(host: str | None) -> str | None:
    """The AWS region in an RDS or Aurora endpoint name, e.g. `db.abc.eu-west-1.rds...`."""
    match = _RDS_HOST.search((host or "").lower())
    return match.group("region") if match else None


@dataclass(frozen=True)
class AwsAuthSettings:
    """IAM settings; secrets are excluded from repr. Unset credentials use the AWS chain."""

    mode: AuthMode = AuthMode.BASIC
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str = "pg_metadata"
    role_duration_s: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> AwsAuthSettings:
        """PG_METADATA_* variables (region: PG_METADATA_AWS_REGION, else AWS_REGION)."""
        values: dict[str, Any] = {
            "mode": env.get("PG_METADATA_AUTH") or "basic",
            "region": env.get("PG_METADATA_AWS_REGION") or env.get("AWS_REGION") or None,
            "role_arn": env.get("PG_METADATA_ROLE_ARN") or None,
            "external_id": env.get("PG_METADATA_EXTERNAL_ID") or None,
            "role_session_name": env.get("PG_METADATA_ROLE_SESSION_NAME") or "pg_metadata",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["mode"] = parse_mode(values["mode"])
        return cls(**values)

    def resolved_region(self, host: str | None) -> str:
        """Configured region, else the one in the RDS host name; ConfigError if neither."""
        region = self.region or region_from_host(host)
        if not region:
            raise ConfigError(
                f"{self.mode.value}: no AWS region for host {host or 'localhost'!r}; set "
                "PG_METADATA_AWS_REGION (or AWS_REGION) or use the RDS endpoint host name"
            )
        return region

    def validate(self, settings: ConnectionSettings) -> None:
        """Check everything that can be checked without AWS or the server."""
        if self.mode is AuthMode.BASIC:
            return
        if not settings.user:
            raise ConfigError(f"{self.mode.value}: set the database user (PGUSER)")
        self.resolved_region(settings.host)
        if self.mode is AuthMode.IAM_ROLE and not self.role_arn:
            raise ConfigError("iam_role: set the role to assume (PG_METADATA_ROLE_ARN)")
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ConfigError(
                f"{self.mode.value}: set both the AWS access key id and the secret access key, "
                "or neither (to use the AWS credential chain)"
            )


def parse_mode(value: str | AuthMode) -> AuthMode:
    """An AuthMode from its name; ConfigError naming the choices."""
    try:
        return AuthMode(value)
    except ValueError:
        choices = ", ".join(m.value for m in AuthMode)
        raise ConfigError(
            f"auth mode {value!r} (PG_METADATA_AUTH) is not one of {choices}"
        ) from None


class _SignedAt(botocore.auth.SigV4QueryAuth):
    """SigV4 query signing at a given instant (botocore's own signer reads the wall clock)."""

    def __init__(self, credentials: Any, region: str, when: dt.datetime) -> None:
        super().__init__(credentials, "rds-db", region, expires=TOKEN_LIFETIME_S)
        self._when = when

    def add_auth(self, request: botocore.awsrequest.AWSRequest) -> None:
        request.context["timestamp"] = self._when.strftime(botocore.auth.SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def sign_rds_token(
    credentials: botocore.credentials.ReadOnlyCredentials,
    host: str,
    port: int,
    user: str,
    region: str,
    when: dt.datetime,
) -> str:
    """An RDS IAM auth token: the same presigned URL as boto3's generate_db_auth_token."""
    request = botocore.awsrequest.AWSRequest(
        method="GET",
        url=f"https://{host}:{port}/",
        params={"Action": "connect", "DBUser": user},
    )
    _SignedAt(credentials, region, when.astimezone(dt.UTC)).add_auth(request)
    return request.prepare().url[len("https://") :]


class CredentialSource:
    """AWS credentials for signing: static/profile/chain (iam_user), or an assumed role."""

    def __init__(self, auth: AwsAuthSettings, region: str, clock: Clock = utc_now) -> None:
        self.auth, self.region, self.clock = auth, region, clock
        self._lock = threading.Lock()
        self._assumed: botocore.credentials.ReadOnlyCredentials | None = None
        self._expires: dt.datetime | None = None
        self.assume_count = 0

    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.auth.access_key_id,
            aws_secret_access_key=self.auth.secret_access_key,
            aws_session_token=self.auth.session_token,
            profile_name=self.auth.profile,
            region_name=self.region,
        )

    def get(self) -> botocore.credentials.ReadOnlyCredentials:
        """Current credentials, re-assuming the role shortly before the old ones expire."""
        if self.auth.mode is AuthMode.IAM_ROLE:
            with self._lock:
                if self._assumed is None or self.clock() >= self._expires - REFRESH_MARGIN:
                    self._assume()
                return self._assumed
        try:
            creds = self._session().get_credentials()
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"iam_user: {exc} (AWS_PROFILE)") from None
        if creds is None:
            raise SourceConnectionError(
                "iam_user: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance/task role"
            )
        return creds.get_frozen_credentials()

    def _assume(self) -> None:
        kwargs: dict[str, Any] = {
            "RoleArn": self.auth.role_arn,
            "RoleSessionName": self.auth.role_session_name,
            "DurationSeconds": self.auth.role_duration_s,
        }
        if self.auth.external_id:
            kwargs["ExternalId"] = self.auth.external_id
        try:
            response = self._session().client("sts").assume_role(**kwargs)
        except Exception as exc:  # botocore raises plain ValueErrors from some providers too
            raise SourceConnectionError(
                f"iam_role: cannot assume {self.auth.role_arn}: {_aws_reason(exc)} (check "
                "PG_METADATA_ROLE_ARN, PG_METADATA_EXTERNAL_ID, the role's trust policy and "
                "the base AWS credentials)"
            ) from None
        c = response["Credentials"]
        self._assumed = botocore.credentials.ReadOnlyCredentials(
            c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]
        )
        expiration = c["Expiration"]
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=dt.UTC)
        # STS reports wall-clock expiry; measure remaining life on our clock
        life = expiration - utc_now()
        self._expires = self.clock() + life
        self.assume_count += 1


class IamTokenHook:
    """A connection hook: a fresh RDS IAM token as the password of every physical connection."""

    def __init__(self, auth: AwsAuthSettings, host: str | None, clock: Clock = utc_now) -> None:
        self.region = auth.resolved_region(host)
        self.credentials = CredentialSource(auth, self.region, clock)
        self.clock = clock
        self.tokens_issued = 0

    def __call__(self, settings: ConnectionSettings, database: str) -> dict[str, Any]:
        token = sign_rds_token(
            self.credentials.get(),
            settings.display_host,
            settings.display_port,
            settings.user or "",
            self.region,
            self.clock(),
        )
        self.tokens_issued += 1
        return {"password": token}


def _aws_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', '')}: {err.get('Message', '')}".strip(": ")
    return " ".join(str(exc).split()) or type(exc).__name__
