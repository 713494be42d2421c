"""RDS IAM auth end to end, without AWS: STS on moto's server, the database behind a loopback
proxy that checks each IAM token the way RDS does before relaying to the test cluster."""

from __future__ import annotations

import ssl

import dagster as dg
import psycopg2
import pytest

from pg_metadata.catalog.auth import AuthMode, AwsAuthSettings, IamTokenHook
from pg_metadata.catalog.connection import connect, create_engine
from pg_metadata.catalog.settings import ConnectionSettings
from pg_metadata.errors import SourceConnectionError
from pg_metadata_tests.conftest import IAM_DB_USER
from pg_metadata_tests.iam import (
    REGION,
    ROLE_ARN,
    STATIC_KEYS,
    SimulatedClock,
    assumed_role,
    secret_for,
)
from pg_metadata_tests.pipeline import run_pipeline
from pg_metadata_tests.rds_proxy import RdsIamProxy
from pg_metadata_tests.tls import make_server_cert

pytestmark = pytest.mark.integration
ACCESS_KEY = next(iter(STATIC_KEYS))


@pytest.fixture(scope="module")
def proxy_tls(tmp_path_factory) -> ssl.SSLContext:
    cert = make_server_cert(tmp_path_factory.mktemp("proxy_tls"), ["127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def proxy(pg_cluster, iam_db_role, proxy_tls, clock):
    with RdsIamProxy(
        pg_cluster.host, pg_cluster.port, REGION, secret_for, clock=clock, ssl_context=proxy_tls
    ) as p:
        yield p


@pytest.fixture
def iam_env(aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", STATIC_KEYS[ACCESS_KEY])
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in ("PG_METADATA_AUTH", "PG_METADATA_AWS_REGION", "AWS_REGION", "PGSSLMODE"):
        monkeypatch.delenv(var, raising=False)


def via_proxy(proxy, **kw) -> dict:
    """PostgresResource fields for the proxy; sslmode left unset so IAM defaults to require."""
    return {"host": proxy.host, "port": proxy.port, "sslmode": None, "aws_region": REGION, **kw}


def proxy_settings(proxy) -> ConnectionSettings:
    return ConnectionSettings(host=proxy.host, port=proxy.port, user=IAM_DB_USER, sslmode="require")


def test_iam_user_pipeline(pg_cluster, proxy, iam_env, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": "*"}',
            user=IAM_DB_USER,
            password=None,
            postgres_kw=via_proxy(proxy, auth="iam_user"),
        )
    assert run.manifest("shop")["entities"]["Table"] == 16
    attempts = proxy.attempts
    # discovery, then the shop partition's two connections (one shared snapshot)
    assert sorted(a.database for a in attempts) == ["postgres", "shop", "shop"]
    assert all(a.check.ok and a.tls and a.user == IAM_DB_USER for a in attempts)
    assert {a.check.access_key_id for a in attempts} == {ACCESS_KEY}


def test_iam_role_pipeline_assumes_the_role(pg_cluster, proxy, iam_env, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": "*"}',
            user=IAM_DB_USER,
            password=None,
            postgres_kw=via_proxy(
                proxy,
                auth="iam_role",
                role_arn=ROLE_ARN,
                external_id="ext-42",
                role_session_name="nightly-catalog",
            ),
        )
    assert run.manifest("shop")["entities"]["Column"] > 50
    assert all(a.check.ok and a.check.session_token_present for a in proxy.attempts)
    roles = {assumed_role(a.check.access_key_id) for a in proxy.attempts}
    assert None not in roles
    for role in roles:
        assert role.role_arn == ROLE_ARN
        assert role.external_id == "ext-42" and role.session_name == "nightly-catalog"


def test_a_fresh_token_for_every_physical_connection(proxy, iam_env, clock):
    hook = IamTokenHook(AwsAuthSettings(AuthMode.IAM_USER, region=REGION), proxy.host, clock)
    settings = proxy_settings(proxy)
    first = connect(settings, "shop", hook)
    clock.advance(minutes=20)  # the first token has expired by now
    second = connect(settings, "shop", hook)
    for conn in (first, second):
        conn.cursor().execute("SELECT 1")
        conn.close()
    a, b = proxy.attempts
    assert a.check.ok and b.check.ok and a.token != b.token
    assert (b.check.signed_at - a.check.signed_at).total_seconds() >= 20 * 60
    # a token baked in at start would now be refused, as RDS would refuse it
    with pytest.raises(psycopg2.OperationalError, match="PAM authentication failed"):
        psycopg2.connect(**{**settings.connect_kwargs("shop"), "password": a.token})
    assert not proxy.attempts[-1].check.ok and "expired" in proxy.attempts[-1].check.reason


def test_sqlalchemy_pool_gets_a_fresh_token_per_new_connection(proxy, iam_env, clock):
    hook = IamTokenHook(AwsAuthSettings(AuthMode.IAM_USER, region=REGION), proxy.host, clock)
    engine = create_engine(proxy_settings(proxy), "shop", hook, pool_size=2)
    try:
        with engine.connect() as c1:
            c1.exec_driver_sql("SELECT 1")
            clock.advance(hours=1)  # an hour into a long run, the pool opens another connection
            with engine.connect() as c2:
                assert c2.exec_driver_sql("SELECT current_user").scalar() == IAM_DB_USER
    finally:
        engine.dispose()
    a, b = proxy.attempts
    assert a.check.ok and b.check.ok and a.token != b.token


def test_role_is_reassumed_before_its_credentials_expire(proxy, iam_env, clock):
    auth = AwsAuthSettings(
        AuthMode.IAM_ROLE, region=REGION, role_arn=ROLE_ARN, role_duration_s=3600
    )
    hook = IamTokenHook(auth, proxy.host, clock)
    settings = proxy_settings(proxy)
    for minutes in (0, 30, 30):  # t = 0, 30 min, 60 min
        clock.advance(minutes=minutes)
        connect(settings, "shop", hook).close()
    keys = [a.check.access_key_id for a in proxy.attempts]
    assert all(a.check.ok for a in proxy.attempts)
    assert keys[0] == keys[1] != keys[2]  # cached for 30 min, renewed within 5 min of expiry
    assert hook.credentials.assume_count == 2


def test_refused_token_is_one_clear_line(pg_cluster, proxy, iam_env, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            user=IAM_DB_USER,
            password=None,
            raise_on_error=False,
            postgres_kw=via_proxy(proxy, auth="iam_user", aws_region="us-east-2"),
        )
    message = run.discover.get_step_failure_events()[0].step_failure_data.user_failure_data
    text = message.description
    assert text.startswith(f"cannot connect to PostgreSQL (iam_user) as {IAM_DB_USER}@127.0.0.1:")
    assert "PAM authentication failed" in text and "rds_iam" in text and "\n" not in text
    assert "X-Amz-Signature" not in text and STATIC_KEYS[ACCESS_KEY] not in text


def test_missing_aws_credentials_for_role_is_one_clear_line(proxy, aws_env, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    auth = AwsAuthSettings(AuthMode.IAM_ROLE, region=REGION, role_arn=ROLE_ARN)
    hook = IamTokenHook(auth, proxy.host)
    with pytest.raises(SourceConnectionError, match=r"iam_role: cannot assume .*credentials"):
        connect(proxy_settings(proxy), "shop", hook)
