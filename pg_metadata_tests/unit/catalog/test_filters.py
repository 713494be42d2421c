"""CatalogFilter: Atlan's include/exclude format, anchoring, bind parameters and error messages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pg_metadata.catalog.filters import CatalogFilter, FilterRule
from pg_metadata.errors import ConfigError

ALL = "^(?:.*)$"


def rules(include: Any) -> list[tuple[str, str]]:
    """(database, schema) pairs of the include rules."""
    return [(r.database, r.schema) for r in CatalogFilter.parse(include, None, None).include]


def test_atlan_list_format() -> None:
    f = CatalogFilter.parse('{"^shop$": ["^sales$", "^public$"]}', None, None)
    assert f.include == (
        FilterRule("^(?:^shop$)$", "^(?:^sales$)$"),
        FilterRule("^(?:^shop$)$", "^(?:^public$)$"),
    )
    assert f.exclude == ()
    assert not any(r.all_schemas for r in f.include)


def test_atlan_star_format() -> None:
    assert rules('{"^crm$": "*"}') == [("^(?:^crm$)$", ALL)]
    assert CatalogFilter.parse('{"^crm$": "*"}', None, None).include[0].all_schemas


@pytest.mark.parametrize("value", [[], {}, None, ["*"], {"*": {}}])
def test_other_all_schema_spellings(value: Any) -> None:
    assert rules({"^crm$": value}) == [("^(?:^crm$)$", ALL)]


def test_sdk_dict_format_equals_list_format() -> None:
    as_dict = rules('{"^shop$": {"^sales$": {}, "^public$": {}}}')
    assert as_dict == rules('{"^shop$": ["^sales$", "^public$"]}')
    assert len(as_dict) == 2


def test_python_dict_accepted_as_well_as_json_text() -> None:
    assert rules({"^shop$": ["^sales$"]}) == rules('{"^shop$": ["^sales$"]}')


@pytest.mark.parametrize("empty", ["", "   ", "{}", " {} ", {}, None])
def test_empty_means_no_rules(empty: Any) -> None:
    f = CatalogFilter.parse(empty, empty, "" if empty is None else "  ")
    assert (f.include, f.exclude, f.temp_table_regex) == ((), (), None)
    assert f.sql_params() == {
        "include_db": [],
        "include_schema": [],
        "exclude_db": [],
        "exclude_schema": [],
        "exclude_db_all": [],
        "temp_table_regex": None,
    }


@pytest.mark.parametrize(
    ("key", "matches", "does_not_match"),
    [
        ("shop", ["shop"], ["shop_archive", "myshop", "shop2", "SHOP", "xshopx"]),
        ("^shop$", ["shop"], ["shop_archive", "myshop"]),
        ("shop|crm", ["shop", "crm"], ["shop_archive", "crm_old", "myshop"]),
        ("shop_.*", ["shop_2024", "shop_"], ["shop", "old_shop_2024"]),
    ],
)
def test_rules_are_anchored_at_both_ends(
    key: str, matches: list[str], does_not_match: list[str]
) -> None:
    ((db, schema),) = rules({key: ["sales"]})
    for name in matches:
        assert re.fullmatch(db, name) and re.match(db, name), name
    for name in does_not_match:
        assert re.match(db, name) is None, name
        assert re.search(db, name) is None, name
    assert re.match(schema, "sales") and not re.match(schema, "sales_old")


def test_sql_params_are_parallel_arrays() -> None:
    f = CatalogFilter.parse(
        '{"^shop$": ["^sales$", "^public$"], "^crm$": "*"}',
        '{"^tmp.*$": "*", "^shop$": ["^scratch$"], "^crm$": {"*": {}}}',
        "^_tmp",
    )
    p = f.sql_params()
    assert p["include_db"] == ["^(?:^shop$)$", "^(?:^shop$)$", "^(?:^crm$)$"]
    assert p["include_schema"] == ["^(?:^sales$)$", "^(?:^public$)$", ALL]
    assert p["exclude_db"] == ["^(?:^tmp.*$)$", "^(?:^shop$)$", "^(?:^crm$)$"]
    assert p["exclude_schema"] == [ALL, "^(?:^scratch$)$", ALL]
    assert len(p["include_db"]) == len(p["include_schema"])
    assert len(p["exclude_db"]) == len(p["exclude_schema"])
    assert p["exclude_db_all"] == ["^(?:^tmp.*$)$", "^(?:^crm$)$"]  # only the "*" rules
    assert p["temp_table_regex"] == "^_tmp"  # not anchored: a plain regex on relation names
    json.dumps(p)  # plain JSON-able values, ready to bind


def test_include_star_rules_are_not_exclude_db_all() -> None:
    assert CatalogFilter.parse('{"^crm$": "*"}', None, None).sql_params()["exclude_db_all"] == []


def test_describe() -> None:
    f = CatalogFilter.parse('{"^shop$": "*"}', '{"^shop$": ["^tmp$"]}', "bak$")
    assert f.describe() == {
        "include": [["^(?:^shop$)$", ALL]],
        "exclude": [["^(?:^shop$)$", "^(?:^tmp$)$"]],
        "temp_table_regex": "bak$",
    }


INCLUDE = ("include filter", "PG_METADATA_INCLUDE")
EXCLUDE = ("exclude filter", "PG_METADATA_EXCLUDE")
TEMP = ("temp-table regex", "PG_METADATA_TEMP_TABLE_REGEX")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('{"^shop$": ["^sales$"]', "not valid JSON"),
        ("{'^shop$': '*'}", "not valid JSON"),
        ("shop", "not valid JSON"),
        ('["^shop$"]', "got list"),
        ('"^shop$"', "got str"),
        ("42", "got int"),
        ('{"^shop$": 5}', '"*" or a list'),
        ('{"^shop$": "sales"}', '"*" or a list'),
        ('{"^shop$": ["^sales$", 3]}', '"*" or a list'),
        ('{"^shop$": [""]}', '"*" or a list'),
        ('{"^shop$": [["^sales$"]]}', '"*" or a list'),
        ('{"": "*"}', "non-empty"),
        ('{"^shop\\u0000$": "*"}', "NUL"),
        ('{"' + "x" * 10_001 + '": "*"}', "at most 10,000"),
        ('{"^shop$": ["' + "s" * 10_001 + '"]}', "schema 'sss"),
        ("[" * 150_000 + "]" * 150_000, "at most 262,144"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ],
)
@pytest.mark.parametrize("which", ["include", "exclude"])
def test_invalid_include_or_exclude(value: str, fragment: str, which: str) -> None:
    names = INCLUDE if which == "include" else EXCLUDE
    args = (value, None) if which == "include" else (None, value)
    with pytest.raises(ConfigError) as info:
        CatalogFilter.parse(*args, None)
    message = str(info.value)
    assert fragment in message
    for name in names:
        assert name in message
    assert "\n" not in message


@pytest.mark.parametrize("regex", ["x\x00", "t" * 10_001])
def test_invalid_temp_table_regex(regex: str) -> None:
    with pytest.raises(ConfigError) as info:
        CatalogFilter.parse(None, None, regex)
    for name in TEMP:
        assert name in str(info.value)


def test_bad_include_reported_before_exclude_is_looked_at() -> None:
    with pytest.raises(ConfigError, match="PG_METADATA_INCLUDE"):
        CatalogFilter.parse("{", "{", None)


def test_quotes_and_semicolons_are_data() -> None:
    """Filter text is bound as a parameter, never pasted into SQL, so no deny-list applies."""
    key = "^o'brien\"; DROP TABLE x; --$"
    schema = "^a'b;c\"$"
    f = CatalogFilter.parse(json.dumps({key: [schema]}), None, "tmp';--")
    p = f.sql_params()
    assert p["include_db"] == [f"^(?:{key})$"]
    assert p["include_schema"] == [f"^(?:{schema})$"]
    assert p["temp_table_regex"] == "tmp';--"
    assert re.match(p["include_db"][0], "o'brien\"; DROP TABLE x; --")


def test_embedded_options_stay_in_front_of_the_anchors() -> None:
    """PostgreSQL accepts `(?i)` only at the very start of a regex."""
    f = CatalogFilter.parse('{"(?i)shop": ["(?x) sales "]}', None, None)
    assert f.sql_params()["include_db"] == ["(?i)^(?:shop)$"]
    assert f.sql_params()["include_schema"] == ["(?x)^(?: sales )$"]


def test_every_anchored_pattern_compiles() -> None:
    f = CatalogFilter.parse(
        '{"^shop$": ["^sales$", "a|b"], "crm.*": "*"}', '{"x|y": {"^z$": {}}}', None
    )
    p = f.sql_params()
    for pattern in p["include_db"] + p["include_schema"] + p["exclude_db"] + p["exclude_schema"]:
        re.compile(pattern)
