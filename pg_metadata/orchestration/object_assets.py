"""Browse the Postgres objects themselves in the Dagster UI: tables and views as external assets.

Built when the code location loads, from each source's latest complete output (the `latest/`
manifests and their raw `tables` Parquet), never by querying the source: loading stays fast and
does not need the database. Views depend on the relations they read (from pg_depend), so the
asset graph shows view -> table lineage. Opt-in (PG_METADATA_BROWSE_OBJECTS=1) and capped
(PG_METADATA_BROWSE_MAX, default 5000 objects) because a huge catalog makes a huge graph.
Partitions are left out: they are shown through their partitioned table.
"""

from __future__ import annotations

import json
import re
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from pg_metadata.output.storage import ObjectStore

COLUMNS = [
    "schema_name",
    "table_name",
    "table_kind",
    "table_type",
    "is_partition",
    "comment",
    "column_count",
    "row_count",
    "view_dependencies",
]
KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view"}


def key_segment(name: str) -> str:
    """A name as one asset key part: `%` and `/` percent-encoded, so parts never merge."""
    return name.replace("%", "%25").replace("/", "%2F")


def object_key(source: str, database: str, schema: str, relation: str) -> dg.AssetKey:
    """Asset key of a relation: <source>/postgres/<db>/<schema>/<relation>, `/` encoded."""
    parts = [key_segment(database), key_segment(schema), key_segment(relation)]
    return dg.AssetKey([source, "postgres", *parts])


def group_name(source: str, database: str) -> str:
    """A valid Dagster group name for a database of a source."""
    return f"{source}_pg_" + (re.sub(r"[^A-Za-z0-9_]", "_", database) or "_")


def latest_manifests(store: ObjectStore) -> list[dict[str, Any]]:
    """The latest manifest of every database in the output target."""
    out = []
    for key in store.list_keys("latest/"):
        data = store.read_bytes(key) if key.endswith(".json") else None
        if data is not None:
            out.append(json.loads(data))
    return sorted(out, key=lambda m: m["database"])


def object_specs(store: ObjectStore, source: str, max_objects: int = 5000) -> list[dg.AssetSpec]:
    """External asset specs for the tables and views in a source's latest output."""
    specs: list[dg.AssetSpec] = []
    for manifest in latest_manifests(store):
        db = manifest["database"]
        entry = next(f for f in manifest["files"] if f.get("path") == "raw/tables")
        table = pq.read_table(store.fetch(entry["uri"]), columns=COLUMNS)
        rows = [r for r in table.to_pylist() if not r["is_partition"]]
        known = {(r["schema_name"], r["table_name"]) for r in rows}
        for r in rows:
            if len(specs) >= max_objects:
                return specs
            deps = [
                object_key(source, db, s, n)
                for s, n in json.loads(r["view_dependencies"] or "[]")
                if (s, n) in known
            ]
            metadata: dict[str, Any] = {
                "dagster/table_name": f"{db}.{r['schema_name']}.{r['table_name']}",
                "table_type": r["table_type"],
                "columns": r["column_count"],
            }
            if r["row_count"] is not None:
                metadata["estimated_rows"] = r["row_count"]
            specs.append(
                dg.AssetSpec(
                    object_key(source, db, r["schema_name"], r["table_name"]),
                    deps=deps,
                    description=r["comment"],
                    group_name=group_name(source, db),
                    kinds={"postgres", KINDS[r["table_kind"]]},
                    metadata=metadata,
                )
            )
    return specs
