"""Auth modes, region resolution and RDS IAM token signing, offline."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.credentials
import pytest

from pg_metadata.catalog.auth import (
    AuthMode,
    AwsAuthSettings,
    IamTokenHook,
    region_from_host,
    sign_rds_token,
)
from pg_metadata.catalog.settings import ConnectionSettings
from pg_metadata.catalog.sources import Source
from pg_metadata.errors import ConfigError

CREDS = botocore.credentials.ReadOnlyCredentials("AKIDUNIT", "unit-secret", "unit-session")


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("mydb.abc123xyz.us-east-1.rds.amazonaws.com", "us-east-1"),
        ("cluster.cluster-ro-abc.eu-west-2.rds.amazonaws.com", "eu-west-2"),
        ("myproxy.proxy-abc.ap-southeast-1.rds.amazonaws.com", "ap-southeast-1"),
        ("db.abc.us-gov-west-1.rds.amazonaws.com", "us-gov-west-1"),
        ("db.abc.cn-north-1.rds.amazonaws.com.cn", "cn-north-1"),
        ("MyDB.ABC.EU-CENTRAL-1.RDS.AMAZONAWS.COM", "eu-central-1"),
        ("db.example.com", None),
        ("127.0.0.1", None),
        (None, None),
    ],
)
def test_region_from_host(host, region):
    assert region_from_host(host) == region


def test_region_precedence_config_then_env_then_host():
    host = "db.x.eu-west-1.rds.amazonaws.com"
    assert AwsAuthSettings.from_env({}, mode="iam_user").resolved_region(host) == "eu-west-1"
    env = {"AWS_REGION": "us-east-2"}
    assert AwsAuthSettings.from_env(env, mode="iam_user").resolved_region(host) == "us-east-2"
    env["PG_METADATA_AWS_REGION"] = "ca-central-1"
    assert AwsAuthSettings.from_env(env, mode="iam_user").resolved_region(host) == "ca-central-1"
    auth = AwsAuthSettings.from_env(env, mode="iam_user", region="sa-east-1")
    assert auth.resolved_region(host) == "sa-east-1"


def test_no_region_is_a_clear_error():
    with pytest.raises(ConfigError, match="PG_METADATA_AWS_REGION"):
        AwsAuthSettings.from_env({}, mode="iam_user").resolved_region("db.example.com")


def test_mode_from_env_and_bad_mode():
    assert AwsAuthSettings.from_env({}).mode is AuthMode.BASIC
    assert AwsAuthSettings.from_env({"PG_METADATA_AUTH": "iam_role"}).mode is AuthMode.IAM_ROLE
    with pytest.raises(ConfigError, match=r"PG_METADATA_AUTH.*basic, iam_user, iam_role"):
        AwsAuthSettings.from_env({"PG_METADATA_AUTH": "kerberos"})


def test_role_settings_from_env():
    env = {
        "PG_METADATA_AUTH": "iam_role",
        "PG_METADATA_ROLE_ARN": "arn:aws:iam::123456789012:role/reader",
        "PG_METADATA_EXTERNAL_ID": "ext-123",
        "PG_METADATA_ROLE_SESSION_NAME": "nightly",
    }
    auth = AwsAuthSettings.from_env(env)
    assert (auth.role_arn, auth.external_id, auth.role_session_name) == (
        "arn:aws:iam::123456789012:role/reader",
        "ext-123",
        "nightly",
    )


@pytest.mark.parametrize(
    ("auth", "user", "message"),
    [
        (AwsAuthSettings(AuthMode.IAM_USER, region="us-east-1"), None, "PGUSER"),
        (AwsAuthSettings(AuthMode.IAM_ROLE, region="us-east-1"), "u", "PG_METADATA_ROLE_ARN"),
        (
            AwsAuthSettings(AuthMode.IAM_USER, region="us-east-1", access_key_id="AKID"),
            "u",
            "secret access key",
        ),
    ],
)
def test_validation_errors(auth, user, message):
    with pytest.raises(ConfigError, match=message):
        auth.validate(ConnectionSettings(host="h", user=user))


def test_secrets_not_in_repr():
    auth = AwsAuthSettings(
        AuthMode.IAM_USER,
        access_key_id="AKID",
        secret_access_key="s3cr3t-key",
        session_token="s3ss10n-tok",
        external_id="ext-s3cr3t",
    )
    assert "s3cr3t" not in repr(auth) and "s3ss10n" not in repr(auth)


def test_signed_token_is_byte_identical_to_boto3():
    rds = boto3.client(
        "rds",
        region_name="eu-west-1",
        aws_access_key_id=CREDS.access_key,
        aws_secret_access_key=CREDS.secret_key,
        aws_session_token=CREDS.token,
    )
    for _ in range(3):  # retry across a second boundary
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expected = rds.generate_db_auth_token("db.x.eu-west-1.rds.amazonaws.com", 5432, "alice")
        ours = sign_rds_token(
            CREDS, "db.x.eu-west-1.rds.amazonaws.com", 5432, "alice", "eu-west-1", before
        )
        if dt.datetime.now(dt.UTC).replace(microsecond=0) == before:
            assert ours == expected
            return
    pytest.fail("clock kept crossing second boundaries")


def test_token_carries_user_region_time_and_lifetime():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    token = sign_rds_token(CREDS, "db.host", 6543, "bob", "us-west-2", when)
    parts = urlsplit("https://" + token)
    q = parse_qs(parts.query)
    assert parts.netloc == "db.host:6543"
    assert q["Action"] == ["connect"] and q["DBUser"] == ["bob"]
    assert q["X-Amz-Date"] == ["20260102T030405Z"] and q["X-Amz-Expires"] == ["900"]
    assert q["X-Amz-Credential"] == ["AKIDUNIT/20260102/us-west-2/rds-db/aws4_request"]
    assert q["X-Amz-Security-Token"] == ["unit-session"]


def test_hook_signs_a_new_token_per_connection_at_the_current_time(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDHOOK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hook-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    now = [dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)]
    hook = IamTokenHook(
        AwsAuthSettings(AuthMode.IAM_USER, region="us-east-1"), "db", lambda: now[0]
    )
    settings = ConnectionSettings(host="db", port=5432, user="reader")
    first = hook(settings, "shop")["password"]
    now[0] += dt.timedelta(minutes=20)
    second = hook(settings, "shop")["password"]
    assert first != second
    assert "X-Amz-Date=20260501T120000Z" in first and "X-Amz-Date=20260501T122000Z" in second
    assert hook.tokens_issued == 2


def test_iam_defaults_to_tls_require_and_basic_does_not(monkeypatch):
    for var in ("PGSSLMODE", "PG_METADATA_AUTH"):
        monkeypatch.delenv(var, raising=False)
    iam = {"host": "h", "user": "u", "aws_region": "eu-west-1"}
    assert Source.from_env(host="h").connection_settings().sslmode is None
    assert Source.from_env(auth="iam_user", **iam).connection_settings().sslmode == "require"
    verify = Source.from_env(auth="iam_role", role_arn="arn:r", sslmode="verify-full", **iam)
    assert verify.connection_settings().sslmode == "verify-full"
    monkeypatch.setenv("PGSSLMODE", "verify-ca")
    assert Source.from_env(auth="iam_user", **iam).connection_settings().sslmode == "verify-ca"


def _token_key(token: str) -> str:
    return parse_qs(urlsplit("https://" + token).query)["X-Amz-Credential"][0].split("/")[0]


@pytest.fixture
def no_ambient_aws(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_named_profile_credentials_sign_the_token(no_ambient_aws):
    (no_ambient_aws / "credentials").write_text(
        "[catalog]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n"
    )
    auth = AwsAuthSettings(AuthMode.IAM_USER, region="us-east-1", profile="catalog")
    token = IamTokenHook(auth, "db")(ConnectionSettings(host="db", user="u"), "x")["password"]
    assert _token_key(token) == "AKIDPROFILE"


def test_explicit_keys_win_over_the_chain(no_ambient_aws, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    auth = AwsAuthSettings(
        AuthMode.IAM_USER,
        region="us-east-1",
        access_key_id="AKIDEXPLICIT",
        secret_access_key="explicit-secret",
    )
    token = IamTokenHook(auth, "db")(ConnectionSettings(host="db", user="u"), "x")["password"]
    assert _token_key(token) == "AKIDEXPLICIT"


def test_missing_profile_is_a_config_error(no_ambient_aws):
    auth = AwsAuthSettings(AuthMode.IAM_USER, region="us-east-1", profile="nope")
    with pytest.raises(ConfigError, match="AWS_PROFILE"):
        IamTokenHook(auth, "db")(ConnectionSettings(host="db", user="u"), "x")


def test_no_credentials_at_all_is_one_clear_line(no_ambient_aws):
    from pg_metadata.errors import SourceConnectionError

    auth = AwsAuthSettings(AuthMode.IAM_USER, region="us-east-1")
    with pytest.raises(SourceConnectionError, match="no AWS credentials found"):
        IamTokenHook(auth, "db")(ConnectionSettings(host="db", user="u"), "x")
