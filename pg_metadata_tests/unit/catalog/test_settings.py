"""ConnectionSettings: reading libpq variables, rendering connect arguments, keeping secrets out."""

from __future__ import annotations

import dataclasses

import pytest

from pg_metadata.catalog.settings import SSL_MODES, ConnectionSettings
from pg_metadata.errors import ConfigError

ENV = {
    "PGHOST": "db.internal",
    "PGPORT": "6432",
    "PGUSER": "catalog_reader",
    "PGDATABASE": "shop",
    "PGSSLMODE": "verify-full",
    "PGSSLROOTCERT": "/etc/ssl/root.crt",
    "PGPASSWORD": "env-secret",
}
SECRET = "s3cr3t-Pa55"


def test_from_env_reads_libpq_variables() -> None:
    s = ConnectionSettings.from_env(ENV)
    assert (s.host, s.port, s.user, s.database) == ("db.internal", 6432, "catalog_reader", "shop")
    assert (s.sslmode, s.sslrootcert) == ("verify-full", "/etc/ssl/root.crt")


def test_from_env_never_copies_pgpassword() -> None:
    """libpq reads PGPASSWORD itself; the settings object must not carry it around."""
    s = ConnectionSettings.from_env(ENV)
    assert s.password is None
    assert "password" not in s.connect_kwargs()
    assert "env-secret" not in repr(s)


def test_from_env_defaults_when_unset_or_empty() -> None:
    for env in ({}, {k: "" for k in ENV}):
        s = ConnectionSettings.from_env(env)
        assert (s.host, s.port, s.user, s.sslmode, s.sslrootcert) == (None,) * 5
        assert s.database == "postgres"
        assert s.describe() == "<libpq default user>@localhost:5432/postgres"


def test_overrides_win_over_env_and_none_overrides_are_ignored() -> None:
    s = ConnectionSettings.from_env(
        ENV, host="override.host", port=5433, database="crm", sslmode="require", user=None
    )
    assert (s.host, s.port, s.database, s.sslmode) == ("override.host", 5433, "crm", "require")
    assert s.user == "catalog_reader"


def test_connect_kwargs_without_password() -> None:
    kwargs = ConnectionSettings.from_env(ENV).connect_kwargs()
    assert kwargs == {
        "dbname": "shop",
        "application_name": "pg_metadata",
        "connect_timeout": 10,
        "options": "-c work_mem=64MB",
        "host": "db.internal",
        "port": 6432,
        "user": "catalog_reader",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/root.crt",
    }


def test_connect_kwargs_minimal_leaves_everything_to_libpq() -> None:
    kwargs = ConnectionSettings().connect_kwargs()
    assert set(kwargs) == {"dbname", "application_name", "connect_timeout", "options"}


def test_connect_kwargs_with_password_and_other_database() -> None:
    s = ConnectionSettings.from_env(ENV, password=SECRET)
    kwargs = s.connect_kwargs("crm")
    assert kwargs["password"] == SECRET
    assert kwargs["dbname"] == "crm"
    assert s.connect_kwargs()["dbname"] == "shop"


def test_custom_timeouts_go_to_the_first_statement_not_the_startup_options() -> None:
    s = ConnectionSettings(
        application_name="nightly-catalog",
        statement_timeout_ms=1234,
        lock_timeout_ms=0,
        idle_in_transaction_timeout_ms=999,
        connect_timeout_s=3,
    )
    kwargs = s.connect_kwargs()
    assert kwargs["application_name"] == "nightly-catalog"
    assert kwargs["connect_timeout"] == 3
    # a startup option would override a stricter timeout set on the role or the database
    assert kwargs["options"] == "-c work_mem=64MB"
    assert s.session_timeouts() == {
        "statement_timeout": 1234,
        "lock_timeout": 0,
        "idle_in_transaction_session_timeout": 999,
    }


def test_repr_and_describe_never_contain_the_password() -> None:
    s = ConnectionSettings.from_env(ENV, password=SECRET)
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    assert SECRET not in s.describe()
    assert SECRET not in s.describe("crm")
    assert s.describe() == "catalog_reader@db.internal:6432/shop"
    assert s.describe("crm") == "catalog_reader@db.internal:6432/crm"


@pytest.mark.parametrize("mode", SSL_MODES)
def test_valid_sslmodes(mode: str) -> None:
    assert ConnectionSettings.from_env({"PGSSLMODE": mode}).sslmode == mode


@pytest.mark.parametrize("mode", ["bogus", "REQUIRE", "verify_full"])
def test_invalid_sslmode(mode: str) -> None:
    with pytest.raises(ConfigError, match="sslmode") as info:
        ConnectionSettings.from_env({"PGSSLMODE": mode})
    assert repr(mode) in str(info.value)
    assert "verify-full" in str(info.value)  # tells the user the valid choices


def test_invalid_sslmode_message_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PGSSLMODE"):
        ConnectionSettings.from_env({"PGSSLMODE": "bogus"})


@pytest.mark.parametrize("port", ["abc", "54 32", "5432.0", "0x1538"])
def test_non_numeric_pgport(port: str) -> None:
    with pytest.raises(ConfigError, match="PGPORT") as info:
        ConnectionSettings.from_env({"PGPORT": port})
    assert "not a number" in str(info.value)


@pytest.mark.parametrize("port", ["0", "-1", "65536", "100000"])
def test_out_of_range_pgport(port: str) -> None:
    with pytest.raises(ConfigError, match="PGPORT") as info:
        ConnectionSettings.from_env({"PGPORT": port})
    assert "out of range" in str(info.value)


def test_out_of_range_port_override() -> None:
    with pytest.raises(ConfigError, match="PGPORT"):
        ConnectionSettings.from_env({}, port=70000)


@pytest.mark.parametrize("field", ["connect_timeout_s", "statement_timeout_ms", "lock_timeout_ms"])
def test_negative_timeouts_rejected(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        ConnectionSettings(**{field: -1})


def test_negative_idle_in_transaction_timeout_rejected() -> None:
    with pytest.raises(ConfigError, match="idle_in_transaction_timeout_ms"):
        ConnectionSettings(idle_in_transaction_timeout_ms=-1)


def test_frozen() -> None:
    s = ConnectionSettings.from_env(ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.host = "elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.password = SECRET  # type: ignore[misc]
    assert s.host == "db.internal"


def test_replace_returns_validated_copy() -> None:
    s = ConnectionSettings.from_env(ENV)
    t = s.replace(database="crm")
    assert (s.database, t.database) == ("shop", "crm")
    with pytest.raises(ConfigError):
        s.replace(port=0)


def test_query_connections_default_env_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from pg_metadata.catalog.sources import Source

    monkeypatch.delenv("PG_METADATA_QUERY_CONNECTIONS", raising=False)
    assert Source.from_env().connections_per_database == 2
    monkeypatch.setenv("PG_METADATA_QUERY_CONNECTIONS", "1")
    assert Source.from_env().connections_per_database == 1
    assert Source.from_env(query_connections=2).connections_per_database == 2
    monkeypatch.setenv("PG_METADATA_QUERY_CONNECTIONS", "8")
    with pytest.raises(ConfigError, match=r"query_connections 8 must be 1 or 2"):
        Source.from_env()
