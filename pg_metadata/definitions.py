"""The code location: one source per entry of PG_METADATA_SOURCES, else the `default` source
described by the PG* and PG_METADATA_* variables."""

from __future__ import annotations

from pg_metadata.catalog.sources import configured_sources
from pg_metadata.orchestration.definitions import build_definitions

defs = build_definitions(configured_sources())
