"""Per-run filter overrides: a run tagged `pg_metadata/overrides` reads its database with other
include/exclude/temp-table filters than its source's (the REST API's /start sets it).

The tag holds JSON of Source fields, never a secret; it is visible on the run in the UI, and
the manifest records the filters a run read with, so deletions are never computed across a
change of filters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pg_metadata.catalog.sources import Source
from pg_metadata.errors import ConfigError

OVERRIDES_TAG = "pg_metadata/overrides"
OVERRIDABLE = ("include", "exclude", "temp_table_regex")


def overrides_tag(changes: Mapping[str, Any]) -> dict[str, str]:
    """The run tag carrying filter overrides (empty when there are none)."""
    unknown = set(changes) - set(OVERRIDABLE)
    if unknown:
        raise ConfigError(f"only {', '.join(OVERRIDABLE)} can be overridden per run")
    return {OVERRIDES_TAG: json.dumps(dict(changes), sort_keys=True)} if changes else {}


def effective_source(source: Source, tags: Mapping[str, str]) -> Source:
    """The source as a run sees it: with the run's filter overrides, if tagged."""
    text = tags.get(OVERRIDES_TAG)
    if not text:
        return source
    try:
        changes = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"run tag {OVERRIDES_TAG} is not JSON: {text[:100]!r}") from None
    if not isinstance(changes, dict) or set(changes) - set(OVERRIDABLE):
        raise ConfigError(f"run tag {OVERRIDES_TAG} may only set {', '.join(OVERRIDABLE)}")
    return source.replace(**changes)
