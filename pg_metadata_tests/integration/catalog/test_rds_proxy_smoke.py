"""End to end: psycopg2 -> RdsIamProxy (RDS-style IAM auth) -> the throwaway cluster."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg2.extensions import connection

from pg_metadata_tests.conftest import PgCluster
from pg_metadata_tests.rds_proxy import RdsIamProxy

pytestmark = pytest.mark.integration
ROLE = "iam_proxy_smoke"
REGION = "us-east-1"
KEY, SECRET = "AKIDTESTPROXY", "proxy-secret"
HBA_LINE = f"host all {ROLE} 127.0.0.1/32 trust\n"


def rds_token(host: str, port: int, secret: str = SECRET, user: str = ROLE) -> str:
    """An RDS IAM token from boto3 for static test credentials (no network call)."""
    client = boto3.client(
        "rds", region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=secret
    )
    return client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)


@pytest.fixture(scope="module")
def trusted_role(pg_cluster: PgCluster) -> Iterator[str]:
    """Role ``iam_proxy_smoke`` (no password), trusted from 127.0.0.1 via pg_hba.conf."""
    if pg_cluster.log_path is None:
        pytest.skip("needs the throwaway cluster (pg_hba.conf is edited)")
    pg_cluster.execute(f"DROP ROLE IF EXISTS {ROLE}; CREATE ROLE {ROLE} LOGIN")
    hba = Path(pg_cluster.query("SHOW hba_file")[0][0])
    original = hba.read_text()
    # write in place: the file keeps its owner (postgres when running as root) and mode
    owner = hba.stat().st_uid
    hba.write_text(HBA_LINE + original)
    assert hba.stat().st_uid == owner
    pg_cluster.execute("SELECT pg_reload_conf()")
    try:
        yield ROLE
    finally:  # remove just our line, in case something else edited the file meanwhile
        hba.write_text(hba.read_text().replace(HBA_LINE, "", 1))
        pg_cluster.execute("SELECT pg_reload_conf()")
        pg_cluster.execute(f"DROP ROLE IF EXISTS {ROLE}")


@pytest.fixture
def proxy(pg_cluster: PgCluster, trusted_role: str) -> Iterator[RdsIamProxy]:
    """A plain (no TLS) proxy in front of the cluster."""
    with RdsIamProxy(pg_cluster.host, pg_cluster.port, REGION, {KEY: SECRET}.get) as p:
        yield p


def connect(
    proxy: RdsIamProxy, token: str, host: str | None = None, sslmode: str = "disable"
) -> connection:
    """psycopg2 connection through the proxy as the test role, the token as password."""
    return psycopg2.connect(
        host=host or proxy.host,
        port=proxy.port,
        user=ROLE,
        password=token,
        dbname="postgres",
        sslmode=sslmode,
        gssencmode="disable",
        connect_timeout=10,
    )


def query_once(conn: connection) -> tuple:
    """Run the smoke query, then close the connection."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, 1+1")
            return cur.fetchone()
    finally:
        conn.close()


def test_connect_with_iam_token(proxy: RdsIamProxy) -> None:
    token = rds_token(proxy.host, proxy.port)
    assert query_once(connect(proxy, token)) == (ROLE, 2)
    [attempt] = proxy.attempts
    assert (attempt.user, attempt.database, attempt.token, attempt.tls) == (
        ROLE,
        "postgres",
        token,
        False,
    )
    assert attempt.check.ok and attempt.check.access_key_id == KEY


def test_wrong_token_is_refused_like_rds(proxy: RdsIamProxy) -> None:
    bad = rds_token(proxy.host, proxy.port, secret="wrong-secret")
    with pytest.raises(psycopg2.OperationalError, match="PAM authentication failed"):
        connect(proxy, bad)
    other_port = rds_token(proxy.host, proxy.port + 1)
    with pytest.raises(psycopg2.OperationalError, match=f'failed for user "{ROLE}"'):
        connect(proxy, other_port)
    reasons = [a.check.reason for a in proxy.attempts]
    assert reasons[0] == "signature mismatch" and reasons[1].startswith("port mismatch")


def test_expected_host_override(pg_cluster: PgCluster, trusted_role: str) -> None:
    with RdsIamProxy(
        pg_cluster.host, pg_cluster.port, REGION, {KEY: SECRET}.get, expected_host="localhost"
    ) as p:
        token = rds_token("localhost", p.port)
        assert query_once(connect(p, token, host="localhost")) == (ROLE, 2)
        assert p.attempts[-1].check.ok


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server SSLContext with a throwaway self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rds-proxy-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return ctx


def test_tls_client(pg_cluster: PgCluster, trusted_role: str, server_tls: ssl.SSLContext) -> None:
    with RdsIamProxy(
        pg_cluster.host, pg_cluster.port, REGION, {KEY: SECRET}.get, ssl_context=server_tls
    ) as p:
        conn = connect(p, rds_token(p.host, p.port), sslmode="require")
        assert conn.info.ssl_in_use
        with conn.cursor() as cur:  # enough data to span several TLS records
            cur.execute("SELECT string_agg(md5(i::text), '') FROM generate_series(1, 5000) i")
            assert len(cur.fetchone()[0]) == 5000 * 32
            cur.execute("SELECT %s::text", ("x" * 200_000,))
            assert cur.fetchone()[0] == "x" * 200_000
        assert query_once(conn) == (ROLE, 2)
        [attempt] = p.attempts
        assert attempt.tls and attempt.check.ok


def proxy_threads() -> list[threading.Thread]:
    """Threads started by any RdsIamProxy that are still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("rds-proxy-")]


def test_half_open_clients_do_not_hang_stop(pg_cluster: PgCluster, trusted_role: str) -> None:
    p = RdsIamProxy(pg_cluster.host, pg_cluster.port, REGION, {KEY: SECRET}.get).start()
    idle = socket.create_connection((p.host, p.port))  # never says anything
    partial = socket.create_connection((p.host, p.port))
    partial.sendall(struct.pack("!ii", 40, 196608) + b"user\0")  # cut mid-StartupMessage
    gone = socket.create_connection((p.host, p.port))
    gone.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest ...
    assert gone.recv(1) == b"N"
    gone.close()  # ... then vanish
    cancel = socket.create_connection((p.host, p.port))
    cancel.sendall(struct.pack("!iiii", 16, 80877102, 1, 2))
    assert cancel.recv(1) == b""  # CancelRequest: just closed
    live = connect(p, rds_token(p.host, p.port))  # a session still relaying at stop()
    time.sleep(0.3)
    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 3
    assert proxy_threads() == []
    with pytest.raises(psycopg2.Error):
        query_once(live)
    for sock in (idle, partial, cancel):
        sock.settimeout(5)
        assert sock.recv(1) == b""  # the proxy closed its end
        sock.close()
