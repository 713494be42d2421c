"""TLS with a self-signed CA: verify-full works with the right CA and fails clearly otherwise."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from pg_metadata.catalog.connection import Connector
from pg_metadata.catalog.sources import Source
from pg_metadata.demo.throwaway import OS_USER, ThrowawayServer
from pg_metadata.errors import SourceConnectionError
from pg_metadata.orchestration.definitions import build_definitions
from pg_metadata_tests.tls import make_ca, make_server_cert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_server():
    """A throwaway cluster that only accepts TLS connections, with a certificate for 127.0.0.1."""
    certs = Path(tempfile.mkdtemp(prefix="pgm_tls_", dir="/tmp"))
    try:
        server_cert = make_server_cert(certs, ["127.0.0.1", "localhost"])
        wrong_ca, _, _ = make_ca(certs, "other-ca")
        if os.geteuid() == 0:
            shutil.chown(certs, user=OS_USER)
            for f in certs.iterdir():
                shutil.chown(f, user=OS_USER)
        certs.chmod(0o755)
        server = ThrowawayServer(
            admin_user="tls_admin",
            admin_password="tls-secret",
            settings={
                "ssl": "on",
                "ssl_cert_file": str(server_cert.cert),
                "ssl_key_file": str(server_cert.key),
            },
            hba_lines=["hostnossl all all 127.0.0.1/32 reject"],
        )
        with server:
            yield server, server_cert.ca, wrong_ca
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def resource(server: ThrowawayServer, **kw) -> Connector:
    return Connector(source(server, **kw))


def source(server: ThrowawayServer, **kw) -> Source:
    return Source(
        "tls",
        host="127.0.0.1",
        port=server.port,
        user="tls_admin",
        password="tls-secret",
        retries=0,
        **kw,
    )


def test_verify_full_with_the_right_ca(tls_server, tmp_path):
    server, ca, _ = tls_server
    tls = source(server, sslmode="verify-full", sslrootcert=str(ca))
    conn = Connector(tls).connect()
    try:
        assert conn.info.ssl_in_use
    finally:
        conn.close()
    defs = build_definitions([tls], target=str(tmp_path))
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("tls__discover_databases")
        result = job.execute_in_process(instance=instance)
    assert result.success


def test_verify_full_with_a_wrong_ca_fails_clearly(tls_server):
    server, _, wrong_ca = tls_server
    with pytest.raises(SourceConnectionError) as info:
        resource(server, sslmode="verify-full", sslrootcert=str(wrong_ca)).connect()
    message = str(info.value)
    assert message.startswith("TLS connection failed (basic) as tls_admin@127.0.0.1:")
    assert "certificate verify failed" in message and "PGSSLROOTCERT" in message
    assert "tls-secret" not in message and "\n" not in message


def test_missing_ca_file_fails_clearly(tls_server, tmp_path):
    server, _, _ = tls_server
    with pytest.raises(SourceConnectionError, match=r"TLS connection failed.*PGSSLROOTCERT"):
        resource(server, sslmode="verify-full", sslrootcert=str(tmp_path / "nope.pem")).connect()


def test_plaintext_is_refused_by_this_server(tls_server):
    server, _, _ = tls_server
    with pytest.raises(SourceConnectionError, match="no encryption"):
        resource(server, sslmode="disable").connect()
