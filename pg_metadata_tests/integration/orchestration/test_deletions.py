"""Deletions: what the previous complete output of a database had and this one has not."""

from __future__ import annotations

import dagster as dg
import pytest
from psycopg2 import sql as pgsql

from pg_metadata_tests.pipeline import CONNECTION_QN, run_pipeline

pytestmark = pytest.mark.integration
DB = "del_db"
D = f"{CONNECTION_QN}/{DB}"
SCHEMA = """
CREATE SCHEMA keep;
CREATE TABLE public.t1 (a int, b text);
CREATE TABLE public.t2 (a int);
CREATE VIEW public.v AS SELECT a FROM public.t1;
CREATE TABLE keep.k (x int);
"""


@pytest.fixture
def database(pg_cluster, catalog_db):
    pg_cluster.create_database(DB, SCHEMA)
    pg_cluster.execute(
        pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            pgsql.Identifier(DB), pgsql.Identifier(catalog_db.reader_user)
        )
    )
    yield catalog_db
    pg_cluster.drop_database(DB)


def extract(pg_cluster, instance, target, reader, include=None, raise_on_error=True):
    run = run_pipeline(
        pg_cluster,
        instance,
        target=str(target),
        include=include or f'{{"^{DB}$": "*"}}',
        user=reader.reader_user,
        password=reader.reader_password,
        raise_on_error=raise_on_error,
    )
    return run, (run.manifest(DB) if run.runs.get(DB) and run.runs[DB].success else None)


def test_deletions_follow_the_catalog(pg_cluster, database, tmp_path):
    with dg.instance_for_test() as instance:
        _, first = extract(pg_cluster, instance, tmp_path, database)
        assert first["deleted"] == {} and "first complete output" in first["deleted_note"]
        process_v = next(
            e["attributes"]["qualifiedName"]
            for e in _entities(tmp_path, first, "transformed/process")
            if e["attributes"]["name"] == f"{D}/public/v"
        )

        pg_cluster.execute(
            "ALTER TABLE public.t1 DROP COLUMN b; DROP TABLE public.t2; "
            "ALTER VIEW public.v RENAME TO v2",
            dbname=DB,
        )
        _, second = extract(pg_cluster, instance, tmp_path, database)
        deleted = second["deleted"]
        assert second["deleted_since_run"] == first["run_id"]
        assert deleted["Table"] == [f"{D}/public/t2"]  # a dropped table
        assert deleted["View"] == [f"{D}/public/v"]  # a renamed view: the old name is gone
        assert deleted["Column"] == [f"{D}/public/t1/b", f"{D}/public/t2/a", f"{D}/public/v/a"]
        assert deleted["Process"] == [process_v]
        assert deleted["Schema"] == [] and deleted["Database"] == []

        # A failed run publishes nothing; the next complete one compares with the last complete.
        fn = "pg_catalog.format_type(oid, integer)"
        pg_cluster.execute(f"REVOKE EXECUTE ON FUNCTION {fn} FROM PUBLIC", dbname=DB)
        try:
            pg_cluster.execute("DROP VIEW public.v2", dbname=DB)
            failed, none = extract(pg_cluster, instance, tmp_path, database, raise_on_error=False)
        finally:
            pg_cluster.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO PUBLIC", dbname=DB)
        assert none is None and not failed.runs[DB].success
        assert failed.manifest(DB)["run_id"] == second["run_id"]  # latest/ untouched
        _, third = extract(pg_cluster, instance, tmp_path, database)
        assert third["deleted_since_run"] == second["run_id"]
        assert third["deleted"]["View"] == [f"{D}/public/v2"]

        # Narrower filters: nothing is listed as deleted, and the manifest says why.
        _, narrowed = extract(
            pg_cluster, instance, tmp_path, database, include=f'{{"^{DB}$": ["^keep$"]}}'
        )
        assert narrowed["deleted"] is None
        assert narrowed["deleted_note"].startswith("not computed: the filters changed since run")


def _entities(target, manifest, path):
    import json

    entry = next(f for f in manifest["files"] if f["path"] == path)
    with open(entry["uri"], encoding="utf-8") as f:
        return [json.loads(line) for line in f]
