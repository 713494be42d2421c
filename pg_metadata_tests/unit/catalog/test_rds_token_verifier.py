"""Offline tests of the hand-written RDS IAM token verifier against tokens made by boto3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import botocore.auth
import pytest

from pg_metadata_tests.rds_proxy import TokenCheck, sigv4_signing_key, verify_rds_token

SIGNED_AT = datetime(2026, 11, 23, 20, 15, 0, tzinfo=UTC)
HOST, PORT = "mydb.cluster-abc.us-east-1.rds.amazonaws.com", 5432
USER, REGION = "iam_user", "us-east-1"
SIG = "signature mismatch"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KEY, SECRET = "AKIDUNITTEST", "unit/secret+key"
SECRETS = {KEY: SECRET, "AKIDEXAMPLE": EXAMPLE_SECRET}
# generated once with boto3 1.44.5 at SIGNED_AT for AKIDEXAMPLE (a fixed regression vector)
KNOWN_TOKEN = (
    "mydb.cluster-abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=iam_user"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20261123%2Fus-east-1%2Frds-db%2Faws4_request"
    "&X-Amz-Date=20261123T201500Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=7eaf8d4854f6587a004b8b041c6b832c5a0651682e33f723dbdfb04cede84d83"
)


@pytest.fixture(autouse=True)
def frozen_signing_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make botocore sign at SIGNED_AT so X-Amz-Date is deterministic."""
    naive = SIGNED_AT.replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: naive)


def make_token(
    host: str = HOST,
    port: int = PORT,
    user: str = USER,
    region: str = REGION,
    key: str = KEY,
    secret: str = SECRET,
    session_token: str | None = None,
) -> str:
    """An RDS IAM token from boto3 for static credentials (no network call)."""
    client = boto3.client(
        "rds",
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=session_token,
    )
    return client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)


def verify(token: str, now: datetime = SIGNED_AT + timedelta(seconds=30), **kw) -> TokenCheck:
    """verify_rds_token with the module defaults, overridable per keyword."""
    args = {"host": HOST, "port": PORT, "user": USER, "region": REGION, **kw}
    return verify_rds_token(token, secret_for=SECRETS.get, now=now, **args)


def test_boto3_token_verifies() -> None:
    token = make_token()
    assert token.startswith(f"{HOST}:{PORT}/?Action=connect&DBUser={USER}&")
    check = verify(token)
    assert check == TokenCheck(
        ok=True,
        reason="",
        access_key_id=KEY,
        signed_at=SIGNED_AT,
        expires_at=SIGNED_AT + timedelta(seconds=900),
        session_token_present=False,
    )


def test_session_token_verifies() -> None:
    token = make_token(session_token="FwoGZXIvYXdzE//session+token==")
    assert "X-Amz-Security-Token=FwoGZXIvYXdzE%2F%2Fsession%2Btoken%3D%3D" in token
    check = verify(token)
    assert check.ok, check.reason
    assert check.session_token_present


def test_known_answer_token() -> None:
    assert verify(KNOWN_TOKEN).ok
    assert make_token(key="AKIDEXAMPLE", secret=EXAMPLE_SECRET) == KNOWN_TOKEN


def test_signing_key_matches_aws_documented_example() -> None:
    # "Derive a signing key for SigV4" example in the AWS IAM user guide
    key = sigv4_signing_key(EXAMPLE_SECRET, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


@pytest.mark.parametrize(
    ("host", "port", "user", "region"),
    [
        ("127.0.0.1", 5432, "u", "eu-west-1"),
        ("MyDB.Example.COM", 443, "us er@x+y", "ap-southeast-2"),  # host lowercased, :443 dropped
        ("localhost", 65000, "naïve/ユーザー", "us-gov-west-1"),
        ("[::1]", 6432, "a=b&c", "cn-north-1"),
    ],
)
def test_odd_inputs_verify(host: str, port: int, user: str, region: str) -> None:
    token = make_token(host=host, port=port, user=user, region=region, session_token="t/+=")
    check = verify(token, host=host, port=port, user=user, region=region)
    assert check.ok, check.reason


def _replace(token: str, old: str, new: str) -> str:
    assert old in token
    return token.replace(old, new, 1)


@pytest.mark.parametrize(
    ("mutate", "expect", "reason"),
    [
        # the server expects something else than what the token was signed for
        (lambda t: t, {"host": "other.example.com"}, "host mismatch"),
        (lambda t: t, {"port": 5433}, "port mismatch"),
        (lambda t: t, {"user": "someone_else"}, "user mismatch"),
        (lambda t: t, {"region": "eu-west-1"}, "region mismatch"),
        # the token itself was edited
        (lambda t: _replace(t, HOST, "evil.example.com"), {}, "host mismatch"),
        (
            lambda t: _replace(t, HOST, "evil.example.com"),
            {"host": "evil.example.com"},
            SIG,
        ),
        (lambda t: _replace(t, f":{PORT}/", ":5433/"), {"port": 5433}, SIG),
        (lambda t: _replace(t, f"DBUser={USER}", "DBUser=admin"), {"user": "admin"}, SIG),
        (lambda t: _replace(t, "us-east-1%2F", "eu-west-1%2F"), {"region": "eu-west-1"}, SIG),
        (lambda t: _replace(t, "%2Frds-db%2F", "%2Fs3%2F"), {}, "service mismatch"),
        (lambda t: _replace(t, "Action=connect", "Action=admin"), {}, "action mismatch"),
        (lambda t: _replace(t, "X-Amz-Expires=900", "X-Amz-Expires=600"), {}, SIG),
        (lambda t: _replace(t, "X-Amz-Expires=900", "X-Amz-Expires=3600"), {}, "expiry"),
        (lambda t: _replace(t, "T201500Z", "T201400Z"), {}, SIG),
        (lambda t: _replace(t, "20261123%2F", "20261122%2F"), {}, "credential date"),
        (lambda t: _replace(t, "HMAC-SHA256", "HMAC-SHA1"), {}, "unsupported algorithm"),
        (lambda t: _replace(t, "SignedHeaders=host", "SignedHeaders=host%3Bx"), {}, "signed head"),
        (lambda t: _replace(t, "/?Action", "/x?Action"), {}, "path mismatch"),
        (lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"), {}, SIG),
        (lambda t: t + "&X-Amz-Extra=1", {}, SIG),
        (lambda t: t + "&DBUser=admin", {}, "malformed token: duplicate"),
        (lambda t: t.split("&X-Amz-Signature")[0], {}, "malformed token: missing X-Amz-Signature"),
        (lambda t: "https://" + t, {}, "malformed token"),
        (lambda t: "not a token", {}, "malformed token"),
        (lambda t: "", {}, "malformed token"),
    ],
)
def test_tampering_is_rejected(mutate, expect: dict, reason: str) -> None:
    check = verify(mutate(make_token()), **expect)
    assert not check.ok
    assert check.reason.startswith(reason), check.reason


def test_unknown_access_key() -> None:
    check = verify(make_token(key="AKIDNOBODY"))
    assert not check.ok and check.reason.startswith("unknown access key")
    assert check.access_key_id == "AKIDNOBODY"


def test_wrong_secret() -> None:
    check = verify(make_token(secret="not-the-secret"))
    assert (check.ok, check.reason) == (False, "signature mismatch")


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (timedelta(seconds=900), ""),  # last valid second
        (timedelta(seconds=901), "token expired"),  # 15 min + 1 s
        (timedelta(days=2), "token expired"),
        (-timedelta(minutes=5), ""),  # the client clock may run 5 minutes ahead
        (-timedelta(minutes=5, seconds=1), "token not yet valid"),
    ],
)
def test_validity_window(offset: timedelta, reason: str) -> None:
    check = verify(make_token(), now=SIGNED_AT + offset)
    assert check.reason.startswith(reason) and check.ok == (reason == "")
    assert check.expires_at == SIGNED_AT + timedelta(minutes=15)


def test_naive_now_is_utc() -> None:
    assert verify(make_token(), now=SIGNED_AT.replace(tzinfo=None)).ok
