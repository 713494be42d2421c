"""Sources as configuration: sources files, the `default` source from the variables, caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from pg_metadata.catalog.sources import (
    Source,
    configured_sources,
    load_sources_file,
    select_sources,
)
from pg_metadata.errors import ConfigError

PROD = """\
sources:
  - name: prod
    host: db1.example.com
    port: 5432
    user: catalog_reader
    password_env: PROD_PG_PASSWORD
    database: postgres
    auth: basic
    include: {"^shop$": "*"}
    exclude: {}
    connection_qualified_name: default/postgres/1717000000
    connection_name: prod-pg
    max_connections: 2
  - name: analytics
    host: analytics.abc123.eu-west-1.rds.amazonaws.com
    user: catalog_reader
    auth: iam_role
    role_arn: arn:aws:iam::123456789012:role/pg-catalog
    connection_qualified_name: default/postgres/1717000001
    query_connections: 1
    schedule: "30 3 * * *"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_a_sources_file_with_two_servers(tmp_path: Path) -> None:
    prod, analytics = load_sources_file(write(tmp_path, PROD))
    assert (prod.name, prod.host, prod.max_connections) == ("prod", "db1.example.com", 2)
    assert prod.catalog_filter.sql_params()["include_db"] == ["^(?:^shop$)$"]
    assert prod.atlan_connection_name == "prod-pg"
    assert prod.pool_slots == 1 and prod.connections_per_database == 2
    assert analytics.atlan_connection_name == "analytics"
    assert analytics.connection_settings().sslmode == "require"  # IAM defaults to TLS
    assert analytics.schedule == "30 3 * * *" and analytics.pool_slots is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("    port: 5432\n", "    prot: 5432\n"),
            "source 'prod': unknown key 'prot' (did you mean 'port'?)",
        ),
        (("    host: db1.example.com\n", ""), "source 'prod': missing required key 'host'"),
        (("name: analytics", "name: prod"), "source name 'prod' appears twice (entries 1 and 2)"),
        (
            ("default/postgres/1717000001", "default/postgres/1717000000"),
            "sources 'prod' and 'analytics' share the Atlan connection",
        ),
        (
            ("    max_connections: 2\n", "    max_connections: two\n"),
            "max_connections must be a whole number",
        ),
        (("name: prod", "name: prod-pg"), "must start with a letter and hold only letters"),
        (("password_env: PROD_PG_PASSWORD", "password: hunter2"), "holds no passwords"),
        (("password_env: PROD_PG_PASSWORD", "password_env: hunter 2"), "name of an environment"),
        (('include: {"^shop$": "*"}', 'include: {"^shop$": 5}'), '"*" or a list'),
        (("auth: basic", "auth: kerberos"), "auth mode 'kerberos'"),
        (
            ("    role_arn: arn:aws:iam::123456789012:role/pg-catalog\n", ""),
            "iam_role: set the role",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_file_source_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in PROD
    path = write(tmp_path, PROD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_sources_file(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: []\n", "'sources' must be a non-empty list"),
        ("servers: []\n", "expected one top-level key 'sources'"),
        ("sources: [\n", "not valid YAML at line"),
        ("sources:\n  - just-a-string\n", "entry 1: each source must be a mapping"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sources_file(write(tmp_path, text))


def test_missing_file_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: No such file.*PG_METADATA_SOURCES"):
        load_sources_file(tmp_path / "nope.yaml")


def test_without_a_file_the_variables_define_the_default_source() -> None:
    env = {
        "PGHOST": "h",
        "PGPORT": "6543",
        "PGUSER": "u",
        "PG_METADATA_INCLUDE": '{"^shop$": "*"}',
        "ATLAN_CONNECTION_QUALIFIED_NAME": "default/postgres/42",
        "PG_METADATA_MAX_CONNECTIONS": "4",
    }
    (source,) = configured_sources(env)
    assert (source.name, source.host, source.port, source.user) == ("default", "h", 6543, "u")
    assert source.connection_qualified_name == "default/postgres/42"
    assert source.pool_slots == 2  # 4 sessions, 2 per database
    with pytest.raises(ConfigError, match="PG_METADATA_MAX_CONNECTIONS 'x' is not a whole number"):
        Source.from_env({"PG_METADATA_MAX_CONNECTIONS": "x"})


def test_the_file_wins_when_set(tmp_path: Path) -> None:
    env = {"PG_METADATA_SOURCES": str(write(tmp_path, PROD)), "PGHOST": "ignored"}
    assert [s.name for s in configured_sources(env)] == ["prod", "analytics"]


def test_password_is_read_from_its_variable_at_connect_time() -> None:
    source = Source("prod", host="h", user="u", password_env="PROD_PG_PASSWORD")
    assert source.connection_settings().password is None  # not read while validating
    assert source.connection_settings({"PROD_PG_PASSWORD": "s3cret"}).password == "s3cret"
    with pytest.raises(ConfigError, match=r"PROD_PG_PASSWORD .*is not set"):
        source.connection_settings({})
    assert "s3cret" not in repr(Source("p", password="s3cret"))


def test_connection_cap_decides_sessions_and_pool_slots() -> None:
    assert Source("a", max_connections=1).connections_per_database == 1
    assert Source("a", max_connections=1).pool_slots == 1
    assert Source("a", max_connections=5).pool_slots == 2
    assert Source("a", max_connections=5, query_connections=1).pool_slots == 5
    with pytest.raises(ConfigError, match="at least 1"):
        Source("a", max_connections=0)


def test_select_sources() -> None:
    a, b = Source("a"), Source("b", connection_qualified_name="default/postgres/2")
    assert select_sources([a, b], None) == [a, b]
    assert select_sources([a, b], ["b", "b"]) == [b]
    with pytest.raises(ConfigError, match="unknown source 'c'; configured: a, b"):
        select_sources([a, b], ["c"])


def test_timeouts_come_from_the_environment_and_reach_the_session() -> None:
    source = Source.from_env(
        {"PG_METADATA_STATEMENT_TIMEOUT_MS": "60000", "PG_METADATA_LOCK_TIMEOUT_MS": "1500"}
    )
    timeouts = source.connection_settings().session_timeouts()
    assert timeouts["statement_timeout"] == 60000 and timeouts["lock_timeout"] == 1500
    with pytest.raises(ConfigError, match="PG_METADATA_LOCK_TIMEOUT_MS 'soon' is not a whole"):
        Source.from_env({"PG_METADATA_LOCK_TIMEOUT_MS": "soon"})
