"""Atlan-style include/exclude filters, validated up front and rendered as SQL bind parameters.

Format (Atlan's): a JSON object mapping a database regex to a list of schema regexes, or to "*"
(all schemas): ``{"^shop$": ["^sales$", "^public$"], "^crm$": "*"}``. The SDK's newer dict form
``{"^shop$": {"^sales$": {}}}`` is accepted too. Every regex is anchored at both ends, so
``shop`` matches the database ``shop`` only, never ``shop_archive``.

The regexes run on the server, so PostgreSQL's engine (ARE) is what validates them
(`check_patterns` in preflight, bound parameters, before any extraction): here only the shape,
size and nesting of the JSON are checked, which need no server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pg_metadata.errors import ConfigError

ALL_SCHEMAS = ".*"
MAX_FILTER_CHARS = 256 * 1024  # a filter's JSON text
MAX_PATTERN_CHARS = 10_000  # one regex; PostgreSQL compiles it for every name it tests
# an ARE may begin with embedded options, e.g. (?i); they must stay in front when anchoring
_OPTIONS = re.compile(r"^\(\?[bceimnpqstwx]+\)")


@dataclass(frozen=True)
class FilterRule:
    """One (database regex, schema regex) pair, both anchored."""

    database: str
    schema: str

    @property
    def all_schemas(self) -> bool:
        """True when the rule covers every schema of the matching databases."""
        return self.schema == _anchor(ALL_SCHEMAS)


@dataclass(frozen=True)
class CatalogFilter:
    """What to extract: include rules (empty = everything), exclude rules, temp-table regex."""

    include: tuple[FilterRule, ...] = ()
    exclude: tuple[FilterRule, ...] = ()
    temp_table_regex: str | None = None

    @classmethod
    def parse(
        cls, include: str | dict | None, exclude: str | dict | None, temp_table_regex: str | None
    ) -> CatalogFilter:
        """Parse and validate; raises ConfigError naming the bad part."""
        temp = (temp_table_regex or "").strip() or None
        if temp is not None:
            _check_pattern(temp, "temp-table regex (PG_METADATA_TEMP_TABLE_REGEX)")
        return cls(
            include=_parse_rules(include, "include filter (PG_METADATA_INCLUDE)"),
            exclude=_parse_rules(exclude, "exclude filter (PG_METADATA_EXCLUDE)"),
            temp_table_regex=temp,
        )

    def sql_params(self) -> dict[str, Any]:
        """Bind parameters used by every catalog query; never pasted into SQL text."""
        return {
            "include_db": [r.database for r in self.include],
            "include_schema": [r.schema for r in self.include],
            "exclude_db": [r.database for r in self.exclude],
            "exclude_schema": [r.schema for r in self.exclude],
            "exclude_db_all": [r.database for r in self.exclude if r.all_schemas],
            "temp_table_regex": self.temp_table_regex,
        }

    def patterns(self) -> Iterator[tuple[str, str]]:
        """Every regex as the server runs it, with what to call it in an error."""
        for what, rules in (("include filter", self.include), ("exclude filter", self.exclude)):
            for rule in rules:
                db = unanchor(rule.database)
                yield rule.database, f"{what}, database key {db!r}"
                if not rule.all_schemas:
                    yield rule.schema, f"{what}, schema {unanchor(rule.schema)!r} of {db!r}"
        if self.temp_table_regex:
            yield self.temp_table_regex, "temp-table regex (PG_METADATA_TEMP_TABLE_REGEX)"

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for logs and metadata."""
        return {
            "include": [[r.database, r.schema] for r in self.include],
            "exclude": [[r.database, r.schema] for r in self.exclude],
            "temp_table_regex": self.temp_table_regex,
        }


def _parse_rules(value: str | dict | None, what: str) -> tuple[FilterRule, ...]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        if len(value) > MAX_FILTER_CHARS:
            raise ConfigError(
                f"{what} is {len(value):,} characters long; at most {MAX_FILTER_CHARS:,} "
                "(use fewer, broader regexes)"
            )
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{what} is not valid JSON ({exc.msg} at char {exc.pos}); "
                'expected e.g. {"^shop$": ["^sales$"]} or {"^shop$": "*"}'
            ) from None
        except RecursionError:
            raise ConfigError(
                f'{what} is nested too deeply; expected e.g. {{"^shop$": ["^sales$"]}}'
            ) from None
    if not isinstance(value, dict):
        raise ConfigError(
            f'{what} must be a JSON object like {{"^shop$": ["^sales$"]}}, '
            f"got {type(value).__name__}"
        )
    rules: list[FilterRule] = []
    for db_pattern, schemas in value.items():
        if not isinstance(db_pattern, str) or not db_pattern.strip():
            raise ConfigError(f"{what}: database keys must be non-empty regex strings")
        _check_pattern(db_pattern, f"{what}, database key {db_pattern!r}")
        for schema_pattern in _schema_patterns(schemas, what, db_pattern):
            _check_pattern(schema_pattern, f"{what}, schema {schema_pattern!r} of {db_pattern!r}")
            rules.append(FilterRule(_anchor(db_pattern), _anchor(schema_pattern)))
    return tuple(rules)


def _schema_patterns(schemas: Any, what: str, db_pattern: str) -> list[str]:
    if schemas == "*" or schemas is None or schemas == [] or schemas == {}:
        return [ALL_SCHEMAS]
    if isinstance(schemas, dict):
        schemas = list(schemas)
    if isinstance(schemas, list) and all(isinstance(s, str) and s.strip() for s in schemas):
        return [(s == "*" and ALL_SCHEMAS) or s for s in schemas]
    raise ConfigError(
        f'{what}: the value for {db_pattern!r} must be "*" or a list of schema regex strings'
    )


def _anchor(pattern: str) -> str:
    """Anchor at both ends so a rule never matches a mere substring (embedded options such
    as `(?i)` stay first, where PostgreSQL requires them)."""
    head, body = _split_options(pattern)
    return f"{head}^(?:{body})$"


def unanchor(anchored: str) -> str:
    """A rule's regex as the user wrote it (rules are stored anchored)."""
    head, body = _split_options(anchored)
    if body.startswith("^(?:") and body.endswith(")$"):
        return head + body[4:-2]
    return anchored


def _split_options(pattern: str) -> tuple[str, str]:
    """(leading embedded options such as `(?i)`, the rest)."""
    options = _OPTIONS.match(pattern)
    head = options.group(0) if options else ""
    return head, pattern[len(head) :]


def _check_pattern(pattern: str, what: str) -> None:
    if "\x00" in pattern:
        raise ConfigError(f"{what} contains a NUL character")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ConfigError(
            f"{what} is {len(pattern):,} characters long; at most {MAX_PATTERN_CHARS:,}"
        )
