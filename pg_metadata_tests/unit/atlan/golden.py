"""Golden-file helper: compare entities with reviewed JSON files in ``pg_metadata_tests/golden``.

Set ``PG_METADATA_UPDATE_GOLDEN=1`` to (re)write the files from the current code instead of
comparing; then review the diff by hand before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden"
UPDATE_ENV = "PG_METADATA_UPDATE_GOLDEN"


def updating() -> bool:
    """True when goldens should be rewritten rather than compared."""
    return os.environ.get(UPDATE_ENV) == "1"


def as_written(value: Any) -> Any:
    """The value as it reads back from the JSON Lines files (orjson round trip)."""
    return orjson.loads(orjson.dumps(value))


def typed(value: Any) -> Any:
    """The value with every scalar tagged by its JSON type, so 1 != 1.0 != True."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal as parsed JSON, and with the same JSON types (int vs float vs bool)."""
    assert actual == expected
    assert typed(actual) == typed(expected)


def check_golden(name: str, actual: Any) -> None:
    """Compare ``actual`` with ``golden/<name>.json`` (or rewrite it when updating)."""
    path = GOLDEN_DIR / f"{name}.json"
    actual = as_written(actual)
    if updating():
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with {UPDATE_ENV}=1 and review it"
    text = path.read_text(encoding="utf-8")
    assert_same_json(actual, json.loads(text))
    # and in the same key order: the JSON Lines files are compared byte for byte across versions
    assert json.dumps(actual, indent=2, ensure_ascii=False) + "\n" == text, "key order changed"
