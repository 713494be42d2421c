"""Filters applied in SQL, and what a role with only CONNECT sees."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from psycopg2 import sql as pgsql

from pg_metadata.errors import ConfigError
from pg_metadata.orchestration.run_results import failure_line
from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration


def schemas_of(run, db="shop") -> set[str]:
    return {e["attributes"]["name"] for e in run.all_entities(db) if e["typeName"] == "Schema"}


@pytest.fixture(scope="module")
def admin_shop(pg_cluster, catalog_db, tmp_path_factory):
    with dg.instance_for_test() as instance:
        yield run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path_factory.mktemp("admin")),
            include='{"^shop$": "*"}',
        )


def test_include_selects_databases_and_schemas(pg_cluster, catalog_db, tmp_path):
    include = json.dumps({"^shop$": ["^sales$", "^Mixed Case$"], "^crm$": "*"})
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include=include)
    assert sorted(run.runs) == ["crm", "shop"]
    assert schemas_of(run) == {"sales", "Mixed Case"}
    assert schemas_of(run, "crm") == {"crm", "public"}
    assert all("/shop/sales.a/" not in qn for qn in run.qualified_names("shop")), "anchoring failed"


def test_exclude_wins_and_star_excludes_whole_database(pg_cluster, catalog_db, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": "*", "^crm$": "*"}',
            exclude='{"^shop$": ["^events$", "^ext$"], "^crm$": "*"}',
        )
    assert sorted(run.runs) == ["shop"]
    assert schemas_of(run) == {"public", "sales", "hidden", "Mixed Case", "sales.a"}


def test_temp_table_regex_drops_relations_and_their_columns(pg_cluster, catalog_db, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": ["^public$"]}',
            temp_table_regex="^tmp_",
        )
    qns = run.qualified_names("shop")
    assert not any("/tmp_scratch" in qn for qn in qns)
    assert any(qn.endswith("/public/session_cache") for qn in qns)
    schema = next(e for e in run.all_entities("shop") if e["typeName"] == "Schema")
    assert schema["attributes"]["tableCount"] == 1


def test_filter_text_is_data_not_sql(pg_cluster, catalog_db, tmp_path):
    evil = json.dumps({"^shop$": ["x'; DROP TABLE sales.customers; --"]})
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include=evil)
    assert schemas_of(run) == set()
    assert pg_cluster.query("SELECT count(*) FROM sales.customers", dbname="shop")[0][0] == 100


def test_invalid_filter_fails_before_connecting(pg_cluster, tmp_path):
    """A bad filter is refused when the source is built: no run, no connection, no file."""
    with dg.instance_for_test() as instance, pytest.raises(ConfigError) as info:
        run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": 5}',
            raise_on_error=False,
            user="nobody",
            password="wrong",
        )
    message = str(info.value)
    assert "include filter (PG_METADATA_INCLUDE)" in message and "'^shop$'" in message
    assert "\n" not in message
    assert not list(tmp_path.rglob("*"))
    sessions = pg_cluster.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'nobody'")
    assert sessions == [(0,)]


@pytest.mark.parametrize(
    ("include", "named"),
    [
        ('{"a{300}b": "*"}', "database key 'a{300}b'"),  # Python accepts, PostgreSQL refuses
        ('{"(?P<n>shop)": "*"}', "database key '(?P<n>shop)'"),
        ('{"^shop$": ["*sales"]}', "schema '*sales' of '^shop$'"),
    ],
)
def test_regexes_are_checked_by_postgresql_before_anything_is_read(
    pg_cluster, catalog_db, tmp_path, include, named
):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include=include, raise_on_error=False
        )
    assert not run.discover.success and not run.runs
    line = failure_line(run.discover.all_events)
    assert "\n" not in line and named in line, line
    assert "is not a valid regular expression for PostgreSQL: " in line
    assert not list(tmp_path.rglob("*.json"))


def test_postgresql_only_syntax_is_accepted(pg_cluster, catalog_db, tmp_path):
    """`(?i)` (case-insensitive, ARE embedded option) is PostgreSQL's and works as there."""
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include='{"(?i)SHOP": "*"}')
    assert sorted(run.runs) == [catalog_db.shop]
    assert run.manifest(catalog_db.shop)["entities"]["Table"] == 16


def test_catalog_only_role_sees_every_relation(pg_cluster, catalog_db, admin_shop, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            user=catalog_db.reader_user,
            password=catalog_db.reader_password,
        )
    # The reader can connect to shop only (and postgres, whose CONNECT is PUBLIC's).
    assert "shop" in run.runs and "crm" not in run.runs
    assert run.qualified_names("shop") == admin_shop.qualified_names("shop")
    # ...yet it cannot read a single row of them.
    with pytest.raises(Exception, match="permission denied"):
        conn = pg_cluster.connect(
            "shop", user=catalog_db.reader_user, password=catalog_db.reader_password
        )
        try:
            conn.cursor().execute("SELECT * FROM hidden.secrets")
        finally:
            conn.close()


def test_a_role_limited_to_one_connection_is_read_on_one(pg_cluster, catalog_db, tmp_path):
    """CONNECTION LIMIT 1: the second connection is refused, so the read falls back to one."""
    role = pgsql.Identifier("pgm_one_conn")
    pg_cluster.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))
    pg_cluster.execute(
        pgsql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 1 PASSWORD 'one-conn-pw'").format(role)
    )
    pg_cluster.execute(
        pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            pgsql.Identifier(catalog_db.shop), role
        )
    )
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include={f"^{catalog_db.shop}$": "*"},
            user="pgm_one_conn",
            password="one-conn-pw",
            postgres_kw={"database": catalog_db.shop},
        )
    result = run.runs[catalog_db.shop]
    assert result.success
    assert run.manifest(catalog_db.shop)["entities"]["Table"] == 16
    outputs = [
        e.step_output_data.metadata
        for e in result.all_events
        if e.is_successful_output and e.step_output_data.output_name == "tables"
    ]
    assert outputs[0]["statements_per_database"].value == 12  # one connection, no retry
