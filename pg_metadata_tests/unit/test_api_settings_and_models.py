"""The REST API's settings and request bodies, and the preflight's helpers: offline."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pg_metadata import telemetry
from pg_metadata.api.models import Credentials, Filters, SourceRequest, StartRequest
from pg_metadata.api.settings import ApiSettings, is_loopback
from pg_metadata.catalog.filters import CatalogFilter, unanchor
from pg_metadata.catalog.preflight import min_version, version_number
from pg_metadata.errors import ConfigError

TOKEN = "t" * 16


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com"])
def test_other_addresses_need_a_token(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match=r"refusing to listen on .* without a token"):
        ApiSettings(host=host)
    assert ApiSettings(host=host, token=TOKEN).host == host


def test_settings_from_env_and_their_mistakes():
    s = ApiSettings.from_env(
        {"PG_METADATA_API_TOKEN": TOKEN, "PG_METADATA_DAGSTER_URL": "http://h:3001"}, port=9000
    )
    assert (s.token, s.dagster_url, s.port) == (TOKEN, "http://h:3001", 9000)
    assert TOKEN not in repr(s)
    with pytest.raises(ConfigError, match="too short"):
        ApiSettings(token="short")
    with pytest.raises(ConfigError, match="out of range"):
        ApiSettings(port=0)
    with pytest.raises(ConfigError, match="webserver's URL"):
        ApiSettings(dagster_url="localhost:3000")


def test_flat_credentials_become_a_source_that_hides_the_password():
    creds = Credentials.model_validate(
        {
            "host": "db.example.com",
            "port": 5433,
            "username": "reader",
            "password": "s3cret-pw",
            "extra": '{"database": "shop"}',  # Atlan's UI sends extra as a JSON string
        }
    )
    source = creds.to_source()
    assert (source.host, source.port, source.database, source.user) == (
        "db.example.com",
        5433,
        "shop",
        "reader",
    )
    assert "s3cret-pw" not in repr(creds) and "s3cret-pw" not in repr(source)


def test_v3_key_value_pairs_and_dotted_extra_keys():
    pairs = [
        {"key": "host", "value": "h"},
        {"key": "authType", "value": "iam_role"},
        {"key": "username", "value": "reader"},
        {"key": "region", "value": "eu-west-1"},
        {"key": "extra.aws_role_arn", "value": "arn:aws:iam::1:role/r"},
    ]
    source = Credentials.model_validate(pairs).to_source()
    assert source.auth_settings.mode.value == "iam_role"
    assert source.role_arn == "arn:aws:iam::1:role/r" and source.aws_region == "eu-west-1"


def test_a_body_names_a_source_or_carries_credentials_never_both():
    assert SourceRequest.model_validate({"source": "prod"}).source == "prod"
    assert SourceRequest.model_validate({"host": "h", "username": "u"}).credentials.host == "h"
    for body in ({}, {"source": "prod", "credentials": {"host": "h"}}):
        with pytest.raises(ValidationError, match="either source"):
            SourceRequest.model_validate(body)


def test_filters_as_atlan_sends_them():
    f = Filters.model_validate(
        {
            "include-filter": '{"^shop$": ["^public$"]}',
            "exclude-filter": "{}",
            "temp-table-regex": "",
        }
    )
    assert f.overrides() == {
        "include": '{"^shop$": ["^public$"]}',
        "exclude": None,
        "temp_table_regex": None,
    }


def test_start_refuses_inline_credentials_and_empty_database_lists():
    with pytest.raises(ValidationError, match="configured sources only"):
        StartRequest.model_validate({"source": "prod", "credentials": {"host": "h"}})
    with pytest.raises(ValidationError, match="non-empty list"):
        StartRequest.model_validate({"source": "prod", "databases": []})
    with pytest.raises(ValidationError):
        StartRequest.model_validate({"source": "prod", "workflow_id": "no spaces allowed"})


def test_minimum_server_version():
    assert min_version({}) == (10, 0)
    assert min_version({"PG_METADATA_MIN_SERVER_VERSION": "9.6"}) == (9, 6)
    assert version_number(9, 6) == 90600 and version_number(15, 0) == 150000
    with pytest.raises(ConfigError, match="is not a version"):
        min_version({"PG_METADATA_MIN_SERVER_VERSION": "ten"})


def test_rules_are_shown_as_written_and_options_stay_first():
    assert unanchor("^(?:shop)$") == "shop"
    assert unanchor("^shop$") == "^shop$"
    (rule,) = CatalogFilter.parse('{"(?i)Shop": "*"}', None, None).include
    assert rule.database == "(?i)^(?:Shop)$"  # PostgreSQL wants embedded options first
    assert unanchor(rule.database) == "(?i)Shop"


def test_telemetry_is_on_only_with_an_endpoint_and_not_disabled():
    assert not telemetry.enabled({})
    assert telemetry.enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert telemetry.enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/t"})
    assert not telemetry.enabled(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "TRUE"}
    )
