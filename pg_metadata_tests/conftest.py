"""Integration-test fixtures: a real PostgreSQL server and a loopback moto S3 server.

Set ``PG_METADATA_TEST_DSN`` (libpq URI of a *superuser* connection) to use an existing
server instead of a throwaway cluster started with the local PostgreSQL binaries.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
from psycopg2 import sql as pgsql
from psycopg2.extensions import make_dsn, parse_dsn

from pg_metadata.demo.throwaway import ThrowawayServer
from pg_metadata.errors import PgMetadataError

FIXTURES = Path(__file__).parent / "fixtures"
READINGS_PLACEHOLDER = "/tmp/pg_metadata_tests_readings.csv"  # shop.sql's file_fdw filename
ADMIN_USER = "pgm_admin"
ADMIN_PASSWORD = "admin-secret"
# autovacuum off keeps reltuples predictable; the statement log lets tests count statements
CLUSTER_SETTINGS = {
    "autovacuum": "off",
    "log_statement": "all",
    "log_line_prefix": "%m [%p] app=%a db=%d user=%u ",
}
# The IAM tests' loopback RDS proxy checks the token, then relays to the cluster as this role.
IAM_DB_USER = "iam_reader"
CLUSTER_HBA = [f"host all {IAM_DB_USER} 127.0.0.1/32 trust"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``integration`` marker."""
    config.addinivalue_line(
        "markers", "integration: needs the throwaway PostgreSQL cluster and/or loopback S3"
    )


@dataclass
class PgCluster:
    """Connection facts and helpers for the PostgreSQL server under test."""

    host: str
    port: int
    admin_user: str
    admin_password: str
    log_path: Path | None = None
    server: ThrowawayServer | None = None  # None for an external server

    def dsn(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        """Keyword/value libpq DSN (values quoted, so odd database names work)."""
        user = user or self.admin_user
        if password is None and user == self.admin_user:
            password = self.admin_password
        parts: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": dbname,
            "user": user,
        }
        if password is not None:
            parts["password"] = password
        return make_dsn(**parts)

    def connect(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> psycopg2.extensions.connection:
        """Open an autocommit psycopg2 connection (caller closes it)."""
        conn = psycopg2.connect(
            self.dsn(dbname, user, password),
            application_name="pg_metadata_tests",
            client_encoding="UTF8",
        )
        conn.autocommit = True
        return conn

    def execute(
        self, sql: str | pgsql.Composable, dbname: str = "postgres", params: Any = None
    ) -> None:
        """Run a statement or a whole multi-statement script as the admin user."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
        finally:
            conn.close()

    def query(
        self, sql: str | pgsql.Composable, dbname: str = "postgres", params: Any = None
    ) -> list[tuple]:
        """Run a query as the admin user and return all rows."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, kicking out sessions."""
        self.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
        )

    def create_database(self, name: str, script: str | None = None) -> None:
        """(Re)create a UTF8 database and optionally run a SQL script inside it."""
        self.drop_database(name)
        self.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                pgsql.Identifier(name)
            )
        )
        if script:
            self.execute(script, dbname=name)

    def libpq_env(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> dict[str, str]:
        """PG* environment variables for libpq clients (default: the admin user)."""
        user = user or self.admin_user
        if password is None and user == self.admin_user:
            password = self.admin_password
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": user,
            "PGPASSWORD": password or "",
            "PGDATABASE": dbname,
            "PGSSLMODE": "disable",
        }


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server: ``PG_METADATA_TEST_DSN`` if set, else a throwaway cluster."""
    external = os.environ.get("PG_METADATA_TEST_DSN")
    if external:
        p = parse_dsn(external)
        yield PgCluster(
            p.get("host", "127.0.0.1"),
            int(p.get("port", 5432)),
            p.get("user", ADMIN_USER),
            p.get("password", ""),
            None,
        )
        return
    try:
        server = ThrowawayServer(
            ADMIN_USER, ADMIN_PASSWORD, settings=CLUSTER_SETTINGS, hba_lines=CLUSTER_HBA
        ).start()
    except PgMetadataError as exc:
        pytest.fail(f"{exc} (or set PG_METADATA_TEST_DSN)", pytrace=False)
    try:
        yield PgCluster(
            server.host, server.port, ADMIN_USER, ADMIN_PASSWORD, server.log_path, server
        )
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_cluster2(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    """A second, independent throwaway server (another source of a fleet)."""
    try:
        server = ThrowawayServer(ADMIN_USER, ADMIN_PASSWORD, settings=CLUSTER_SETTINGS).start()
    except PgMetadataError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield PgCluster(
            server.host, server.port, ADMIN_USER, ADMIN_PASSWORD, server.log_path, server
        )
    finally:
        server.stop()


@pytest.fixture
def pg_standby(pg_cluster: PgCluster, catalog_db) -> Iterator[PgCluster]:
    """A hot standby (read replica) of the throwaway cluster, holding the `shop` catalog."""
    if pg_cluster.server is None:
        pytest.skip("needs the throwaway cluster (a standby is made with pg_basebackup)")
    replica = pg_cluster.server.standby()
    try:
        yield PgCluster(
            replica.host, replica.port, ADMIN_USER, ADMIN_PASSWORD, replica.log_path, replica
        )
    finally:
        replica.stop()


@dataclass(frozen=True)
class CatalogDb:
    """Names of the fixture databases and the low-privilege reader credentials."""

    shop: str = "shop"
    crm: str = "crm"
    odd: str = 'Odd "DB".name/x'
    zoo: str = "zoo"
    reader_user: str = "catalog_reader"
    reader_password: str = "reader-secret"

    @property
    def databases(self) -> tuple[str, ...]:
        """All fixture database names."""
        return (self.shop, self.crm, self.odd, self.zoo)


@pytest.fixture(scope="session")
def catalog_db(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> CatalogDb:
    """Create ``shop``, ``crm``, ``zoo`` and the odd-named database plus role ``catalog_reader``.

    ``catalog_reader`` only has CONNECT on ``shop`` and ``zoo``; PUBLIC's CONNECT/TEMP on the
    fixture databases is revoked, so it cannot connect to ``crm`` or the odd database.
    """
    cat = CatalogDb()
    # the foreign table's file lives in this session's temp dir (only its path is catalogued)
    readings = tmp_path_factory.mktemp("file_fdw") / "readings.csv"
    shutil.copyfile(FIXTURES / "readings.csv", readings)
    for db in cat.databases:
        pg_cluster.drop_database(db)
    reader = pgsql.Identifier(cat.reader_user)
    pg_cluster.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(reader))
    pg_cluster.execute(
        pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(reader), params=(cat.reader_password,)
    )
    shop = (FIXTURES / "shop.sql").read_text("utf-8").replace(READINGS_PLACEHOLDER, str(readings))
    pg_cluster.create_database(cat.shop, shop)
    pg_cluster.create_database(cat.crm, (FIXTURES / "crm.sql").read_text("utf-8"))
    pg_cluster.create_database(cat.odd, "CREATE TABLE public.t (a int);")
    pg_cluster.create_database(cat.zoo, (FIXTURES / "zoo.sql").read_text("utf-8"))
    for db in cat.databases:
        pg_cluster.execute(
            pgsql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(pgsql.Identifier(db))
        )
    for db in (cat.shop, cat.zoo):
        pg_cluster.execute(
            pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(pgsql.Identifier(db), reader)
        )
    return cat


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on a loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point AWS SDKs at the moto server with fake credentials; returns the endpoint."""
    for var in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    # keep ~/.aws/{config,credentials} out of the picture
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws_config_absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws_credentials_absent"))
    return s3_server


@pytest.fixture
def s3_bucket(aws_env: str) -> str:
    """A fresh, uniquely named bucket on the moto server."""
    name = f"pgm-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def pg_env(pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Hermetic env: PG* point at the admin user/``postgres``; PG*, PG_METADATA_*, ATLAN_*
    variables from the outer environment are removed. Returns the libpq variables set."""
    for var in list(os.environ):
        if var.startswith(("PG", "ATLAN_")):
            monkeypatch.delenv(var, raising=False)
    env = pg_cluster.libpq_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def iam_db_role(pg_cluster: PgCluster, catalog_db: CatalogDb) -> str:
    """The role the IAM tests connect as; the throwaway cluster trusts it from loopback."""
    if pg_cluster.log_path is None:
        pytest.skip("needs the throwaway cluster (it trusts the IAM role behind the proxy)")
    exists = pg_cluster.query("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(IAM_DB_USER,))
    if not exists:
        pg_cluster.execute(f"CREATE ROLE {IAM_DB_USER} LOGIN")
    pg_cluster.execute(f"GRANT CONNECT ON DATABASE {catalog_db.shop} TO {IAM_DB_USER}")
    return IAM_DB_USER
