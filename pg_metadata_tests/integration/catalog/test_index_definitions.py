"""Every index of every shape (quoted and reserved names, collations, operator classes, DESC and
NULLS FIRST, expressions, partial, INCLUDE, hash and GIN, storage parameters, NULLS NOT
DISTINCT, partitioned, materialized views, domains) comes out once, under its own name, with
the server's pg_get_indexdef text."""

from __future__ import annotations

import dagster as dg
import pytest

from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration
DB = "pgm_indexes"
SCRIPT = """
CREATE TABLE "Mixed Case" ("Id" int PRIMARY KEY, "select" text, v varchar(10), t text COLLATE "C",
                           n numeric, d date, j jsonb);
CREATE INDEX ON "Mixed Case" ("select");
CREATE INDEX "Odd ""Name"" idx" ON "Mixed Case" (v);
CREATE INDEX ON "Mixed Case" (t);
CREATE INDEX select_c ON "Mixed Case" ("select" COLLATE "C");
CREATE INDEX ON "Mixed Case" (n DESC, d NULLS FIRST);
CREATE INDEX ON "Mixed Case" (t text_pattern_ops);
CREATE INDEX ON "Mixed Case" (lower("select"));
CREATE INDEX positive_n ON "Mixed Case" (n) WHERE n > 0;
CREATE INDEX ON "Mixed Case" (d) INCLUDE (n);
CREATE INDEX ON "Mixed Case" USING hash (n);
CREATE INDEX ON "Mixed Case" USING gin (j);
CREATE INDEX ON "Mixed Case" (n, d, "Id");
CREATE UNIQUE INDEX filled ON "Mixed Case" (d) WITH (fillfactor = 70);
CREATE UNIQUE INDEX ON "Mixed Case" (n) NULLS NOT DISTINCT;
CREATE TABLE parted (k int, x int) PARTITION BY RANGE (k);
CREATE INDEX ON parted (x);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE SCHEMA "Other Schema";
CREATE TABLE "Other Schema"."t" (a int PRIMARY KEY, b int UNIQUE);
CREATE TABLE "user" (id bigint PRIMARY KEY, "order" int);
CREATE INDEX "index" ON "user" ("order", id);
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one;
CREATE UNIQUE INDEX ON mv (one);
CREATE TABLE kinds (s smallint, b bigint, o oid, c char(3), u uuid, ts timestamptz, a int[]);
CREATE INDEX ON kinds (s, b, o, c, u, ts);
CREATE INDEX ON kinds (a);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE dom (x posint);
CREATE INDEX ON dom (x);
"""
SERVER = """
SELECT ic.relname, pg_catalog.pg_get_indexdef(x.indexrelid)
FROM pg_catalog.pg_index AS x
JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid
JOIN pg_catalog.pg_class AS c ON c.oid = x.indrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'Other Schema')
"""


def test_every_index_definition_is_the_servers(pg_cluster, tmp_path):
    pg_cluster.drop_database(DB)
    pg_cluster.create_database(DB, SCRIPT)
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include={f"^{DB}$": "*"})
    ours = {}
    for entity in run.all_entities(DB):
        for index in (entity.get("customAttributes") or {}).get("indexes") or []:
            ours[index["name"]] = index["definition"]
    server = dict(pg_cluster.query(SERVER, dbname=DB))
    assert len(server) == 25
    assert ours == server
