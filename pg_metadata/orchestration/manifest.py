"""The manifest: written last, it lists every file of a database's complete output.

``runs/<run_id>/manifest/<database>.json`` is written by each run that completes, then
``latest/<database>.json`` is replaced by the same document. A run that fails never gets here,
so ``latest/`` always points at a complete output.
"""

import datetime as dt
import json
from typing import Any

import dagster as dg

from pg_metadata.catalog.datasets import DATABASES, PER_DATABASE
from pg_metadata.errors import OutputError
from pg_metadata.orchestration.history import latest_materialization
from pg_metadata.orchestration.keys import ENTITY_KEYS, raw_key
from pg_metadata.orchestration.partitions import database_partitions
from pg_metadata.orchestration.resources import OutputTarget
from pg_metadata.output.storage import encode_segment

MANIFEST_KEY = dg.AssetKey(["output", "manifest"])
MANIFEST_FORMAT = "pg_metadata.orchestration.manifest/1"
PER_DATABASE_KEYS = [raw_key(d) for d in PER_DATABASE] + list(ENTITY_KEYS.values())


def latest_file(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
) -> dict[str, Any]:
    """The file of the latest materialization of an asset (partition)."""
    latest = latest_materialization(instance, key, partition)
    if latest is None or "uri" not in latest[0].metadata:
        where = key.to_user_string() + (f" [{partition}]" if partition else "")
        raise OutputError(f"{where} has no output yet; materialize it before the manifest")
    meta, run_id = latest[0].metadata, latest[1]
    return {
        "asset": key.to_user_string(),
        "uri": str(meta["uri"].value),
        "rows": int(meta["dagster/row_count"].value),
        "bytes": int(meta["size_bytes"].value) if "size_bytes" in meta else None,
        "run_id": run_id,
    }


def build_manifest(instance: dg.DagsterInstance, database: str, run_id: str) -> dict[str, Any]:
    """The manifest document for one database."""
    files = [latest_file(instance, raw_key(DATABASES), None)]
    files += [latest_file(instance, key, database) for key in PER_DATABASE_KEYS]
    return {
        "format": MANIFEST_FORMAT,
        "database": database,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": files,
        "entities": {
            type_name: next(f["rows"] for f in files if f["asset"] == key.to_user_string())
            for type_name, key in ENTITY_KEYS.items()
        },
    }


@dg.asset(
    key=MANIFEST_KEY,
    deps=[raw_key(DATABASES), *PER_DATABASE_KEYS],
    partitions_def=database_partitions,
    group_name="output",
    kinds={"json"},
    description="Lists every file of this database's latest complete output with its row "
    "count; written last, then copied to latest/<database>.json.",
)
def manifest(context: dg.AssetExecutionContext, output: OutputTarget) -> dg.MaterializeResult:
    database = context.partition_key
    try:
        doc = build_manifest(context.instance, database, context.run.run_id)
        data = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
        store = output.store()
        segment = encode_segment(database)
        uri = store.publish_bytes(data, f"runs/{context.run.run_id}/manifest/{segment}.json")
        latest = store.publish_bytes(data, f"latest/{segment}.json")
    except OutputError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    return dg.MaterializeResult(
        metadata={
            "uri": dg.MetadataValue.path(uri),
            "latest": dg.MetadataValue.path(latest),
            "dagster/row_count": len(doc["files"]),
            "entities": dg.MetadataValue.json(doc["entities"]),
        }
    )
