"""Quick checks that the integration fixtures themselves work."""

from __future__ import annotations

import os

import boto3
import psycopg2
import pytest
from psycopg2 import errors

from .conftest import CatalogDb, PgCluster

pytestmark = pytest.mark.integration


def test_cluster_answers(pg_cluster: PgCluster) -> None:
    assert pg_cluster.query("SELECT 1") == [(1,)]
    (version,) = pg_cluster.query("SHOW server_version_num")[0]
    assert int(version) >= 120000
    if pg_cluster.log_path is not None:
        assert pg_cluster.log_path.exists()


def test_admin_password_auth_over_tcp(pg_cluster: PgCluster) -> None:
    conn = psycopg2.connect(pg_cluster.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, inet_server_addr() IS NOT NULL")
            assert cur.fetchone() == (pg_cluster.admin_user, True)
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(pg_cluster.dsn(password="wrong-password"))


def test_reader_can_connect_but_not_select(pg_cluster: PgCluster, catalog_db: CatalogDb) -> None:
    conn = pg_cluster.connect(catalog_db.shop, catalog_db.reader_user, catalog_db.reader_password)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == (catalog_db.reader_user, catalog_db.shop)
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                cur.execute("SELECT * FROM sales.customers")
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        pg_cluster.connect(catalog_db.crm, catalog_db.reader_user, catalog_db.reader_password)


def test_reader_sees_whole_catalog(pg_cluster: PgCluster, catalog_db: CatalogDb) -> None:
    counts_sql = """
        SELECT c.relkind::text, count(*)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        GROUP BY 1 ORDER BY 1
    """
    conn = pg_cluster.connect(catalog_db.shop, catalog_db.reader_user, catalog_db.reader_password)
    try:
        with conn.cursor() as cur:
            cur.execute(counts_sql)
            as_reader = cur.fetchall()
            cur.execute("SELECT count(*) FROM pg_class WHERE relispartition")
            assert cur.fetchone() == (7,)
    finally:
        conn.close()
    assert as_reader == pg_cluster.query(counts_sql, dbname=catalog_db.shop)
    assert dict(as_reader) == {"f": 1, "m": 1, "p": 3, "r": 19, "v": 3}


def test_other_fixture_databases(pg_cluster: PgCluster, catalog_db: CatalogDb) -> None:
    assert pg_cluster.query("SELECT count(*) FROM public.t", dbname=catalog_db.odd) == [(0,)]
    rows = pg_cluster.query(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'crm' ORDER BY 1",
        dbname=catalog_db.crm,
    )
    assert rows == [
        ("account_contacts", "VIEW"),
        ("accounts", "BASE TABLE"),
        ("contacts", "BASE TABLE"),
    ]


def test_pg_env(pg_env: dict[str, str], pg_cluster: PgCluster) -> None:
    assert os.environ["PGPORT"] == str(pg_cluster.port)
    assert not [k for k in os.environ if k.startswith(("PG_METADATA_", "ATLAN_"))]
    conn = psycopg2.connect("")  # libpq reads the PG* variables
    try:
        assert conn.info.user == pg_cluster.admin_user
    finally:
        conn.close()


def test_s3_bucket_put_get(s3_bucket: str, aws_env: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == aws_env
    s3 = boto3.client("s3", endpoint_url=aws_env)
    s3.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    # the endpoint is also picked up from AWS_ENDPOINT_URL alone
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["a/b.txt"]
