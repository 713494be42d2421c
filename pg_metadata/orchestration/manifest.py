"""The manifest: written last, it lists every file of a database's complete output.

``<source>/runs/<run_id>/manifest/<database>.json`` is written by each run that completes, then
``<source>/latest/<database>.json`` is replaced by the same document. A run that fails never
gets here, so ``latest/`` always points at a complete output.

It also lists what was deleted: per type, the qualifiedNames of the previous complete output
(the ``latest/`` manifest being replaced) that are absent now, compared through the names
index of each entity file. Only when the previous output read the same filters; otherwise the
manifest says why it lists none.
"""

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from pg_metadata import telemetry
from pg_metadata.catalog.datasets import DATABASES, TABLES
from pg_metadata.errors import OutputError
from pg_metadata.orchestration.assets import spec_args
from pg_metadata.orchestration.history import Key, latest_materialization, run_materializations
from pg_metadata.orchestration.overrides import effective_source
from pg_metadata.orchestration.plan import (
    ENTITY_PATHS,
    MANIFEST_PATH,
    PARTITION_TAG,
    RAW_PATHS,
    SourcePlan,
)
from pg_metadata.orchestration.resources import OutputTarget
from pg_metadata.orchestration.tracing import step_trace
from pg_metadata.output.formats import read_names
from pg_metadata.output.retention import STALE_AFTER_S, Pruned, apply_prune, keep_runs, plan_prune
from pg_metadata.output.storage import ObjectStore, encode_segment

MANIFEST_FORMAT = "pg_metadata.manifest/2"
DEAD = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)  # their files are debris
SUCCEEDED = dg.DagsterRunStatus.SUCCESS
FULL_LISTING_EVERY_S = 7 * 24 * 3600  # bounds what a break in the manifests' lists leaves
PER_DATABASE_PATHS = [p for n, p in RAW_PATHS.items() if n != DATABASES.name] + list(
    ENTITY_PATHS.values()
)


def run_file(
    instance: dg.DagsterInstance,
    plan: SourcePlan,
    path: str,
    partition: str | None,
    own: Mapping[Key, dg.AssetMaterialization],
    run_id: str,
) -> dict[str, Any]:
    """The file of an asset (partition) this run wrote (`own`: its materializations); when it
    wrote none (a run of some assets only), the latest one, with the run that wrote it."""
    key = plan.key(path)
    mine = own.get((key, partition))
    latest = (
        (mine, run_id) if mine is not None else latest_materialization(instance, key, partition)
    )
    if latest is None or "uri" not in latest[0].metadata:
        where = key.to_user_string() + (f" [{partition}]" if partition else "")
        raise OutputError(f"{where} has no output yet; materialize it before the manifest")
    meta, run_id = latest[0].metadata, latest[1]
    return {
        "path": path,
        "asset": key.to_user_string(),
        "uri": str(meta["uri"].value),
        "rows": int(meta["dagster/row_count"].value),
        "bytes": int(meta["size_bytes"].value) if "size_bytes" in meta else None,
        "sha256": str(meta["sha256"].value) if "sha256" in meta else None,
        "names_uri": str(meta["names_uri"].value) if "names_uri" in meta else None,
        "run_id": run_id,
    }


def build_manifest(
    instance: dg.DagsterInstance,
    plan: SourcePlan,
    database: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest document for one database of a source."""
    own = run_materializations(instance, run_id)
    files = [run_file(instance, plan, RAW_PATHS[DATABASES.name], None, own, run_id)]
    files += [run_file(instance, plan, p, database, own, run_id) for p in PER_DATABASE_PATHS]
    rows = {f["path"]: f["rows"] for f in files}
    tables_run = next(f["run_id"] for f in files if f["path"] == RAW_PATHS[TABLES.name])
    record = instance.get_run_record_by_id(tables_run)
    return {
        "format": MANIFEST_FORMAT,
        "source": plan.name,
        "database": database,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # when the run that read the catalog started: `latest/` only ever moves to a later one
        "catalog_read_at": record.start_time if record and record.start_time else time.time(),
        "filters": effective_source(plan.source, tags or {}).catalog_filter.describe(),
        "files": files,
        "entities": {t: rows[p] for t, p in ENTITY_PATHS.items()},
    }


def deletions(
    store: ObjectStore, doc: dict[str, Any], previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Manifest fields for what the previous complete output had and this one has not."""
    if previous is None:
        return {"deleted": {}, "deleted_note": "first complete output of this database"}
    if previous.get("filters") != doc["filters"]:
        return {
            "deleted": None,
            "deleted_note": f"not computed: the filters changed since run {previous['run_id']}",
        }
    before = {f["path"]: f.get("names_uri") for f in previous.get("files", [])}
    deleted: dict[str, list[str]] = {}
    for f in doc["files"]:
        old = before.get(f["path"])
        if f["path"] not in ENTITY_PATHS.values() or not old or not f.get("names_uri"):
            continue
        gone = set(read_names(store.fetch(old))) - set(read_names(store.fetch(f["names_uri"])))
        type_name = next(t for t, p in ENTITY_PATHS.items() if p == f["path"])
        deleted[type_name] = sorted(gone)
    return {"deleted": deleted, "deleted_since_run": previous["run_id"]}


def _ended(context: dg.AssetExecutionContext) -> Callable[[str], bool]:
    """Whether a run (by id) failed or was canceled in this instance: its files are debris.
    Successful runs without a manifest (some assets only) may feed later runs, and unknown
    runs (another instance's, a throwaway CLI instance's) may still be writing: both stay."""
    this_run = context.run.run_id

    def ended(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id) if run_id != this_run else None
        return run is not None and run.status in DEAD

    return ended


def _retention(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    doc: dict[str, Any],
    previous: dict[str, Any] | None,
    latest_run: str,
) -> Pruned:
    """What to prune once this run's manifest is out, and the manifest's record of it. From the
    previous manifest's list of complete runs, the runs it was deleting (a delete that failed
    is finished now) and the runs of this database the instance saw end since (a day's
    margin): failed ones leave debris, a complete one overlapped the previous run. All of
    `runs/` is listed instead for a database's first output, when `latest/` stays on another
    run, when the previous manifest has no list (an older version's), and once a week (what
    another instance's runs left, or a hand-deleted `latest/`)."""
    database = doc["database"]
    now = time.time()
    history, recent, since = None, None, None
    if previous is not None and latest_run == doc["run_id"]:
        if now - float(previous.get("listed_at") or 0) < FULL_LISTING_EVERY_S:
            history = previous.get("complete_runs")
        since = float(previous.get("catalog_read_at") or 0) - STALE_AFTER_S
    if history is not None:
        filters = dg.RunsFilter(
            tags={PARTITION_TAG: database},
            statuses=[SUCCEEDED, *DEAD],
            updated_after=dt.datetime.fromtimestamp(since or 0, dt.UTC),
        )
        recent = list(context.instance.get_run_ids(filters))
    listed = list(doc["files"])  # the files of the output latest/ points at stay
    if previous is not None and latest_run != doc["run_id"]:
        listed += previous.get("files", [])
    pruned = plan_prune(
        store,
        database,
        keep_runs(),
        (doc["run_id"], float(doc["catalog_read_at"])),
        latest_run,
        _ended(context),
        history,
        recent,
        protected={f["run_id"] for f in listed},
        retry=(previous or {}).get("pruning") or (),
    )
    doc["complete_runs"] = pruned.history()
    doc["pruning"] = pruned.complete + pruned.partial
    doc["listed_at"] = now if history is None else previous["listed_at"]  # type: ignore[index]
    return pruned


def _newer(previous: Mapping[str, Any] | None, doc: Mapping[str, Any]) -> str | None:
    """Why `latest/` must stay on `previous` (it read the catalog after this run), or None."""
    if previous is None or previous.get("catalog_read_at", 0) <= doc["catalog_read_at"]:
        return None
    return (
        f"latest/ stays on run {previous['run_id']}, which read the catalog after this run "
        f"{doc['run_id']} did; this run's manifest is kept under runs/ only"
    )


def manifest_asset(plan: SourcePlan) -> dg.AssetsDefinition:
    """The manifest asset of a source: depends on every other asset, written last."""

    @dg.asset(
        **spec_args(plan.specs[MANIFEST_PATH], MANIFEST_PATH),
        deps=[plan.key(p) for p in (RAW_PATHS[DATABASES.name], *PER_DATABASE_PATHS)],
        partitions_def=plan.partitions,
        required_resource_keys={plan.io_manager_key},
    )
    def _manifest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        database = context.partition_key
        output: OutputTarget = getattr(context.resources, plan.io_manager_key).output
        attributes = {"pg_metadata.source": plan.name, "db.namespace": database}
        publish = telemetry.phase("pg_metadata.manifest", **attributes)
        try:
            with step_trace(context), publish as span:
                run = context.run
                doc = build_manifest(context.instance, plan, database, run.run_id, run.tags)
                store = output.store()
                segment = encode_segment(database)
                raw = store.read_bytes(f"latest/{segment}.json")
                previous = json.loads(raw) if raw else None
                newer = _newer(previous, doc)
                if newer is None:
                    doc.update(deletions(store, doc, previous))
                    latest_run = run.run_id
                else:  # an overlapping run read the catalog later and published first
                    doc.update(deleted=None, deleted_note=newer)
                    latest_run = previous["run_id"] if previous else run.run_id
                pruning = _retention(context, store, doc, previous, latest_run)
                data = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
                run_key = f"runs/{context.run.run_id}/manifest/{segment}.json"
                uri = store.publish_bytes(data, run_key)
                if newer is None:
                    latest = store.publish_bytes(data, f"latest/{segment}.json")
                else:
                    latest = store.uri(f"latest/{segment}.json")
                    context.log.warning(f"{plan.name}/{database}: {newer}")
                pruned = apply_prune(store, pruning)
                span.set_attributes({"uri": latest, "pg_metadata.bytes": len(data)})
        except OutputError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        telemetry.log(
            logging.INFO,
            f"published the manifest of {plan.name}/{database}: {latest}",
            **{"pg_metadata.entities": json.dumps(doc["entities"])},
        )
        return dg.MaterializeResult(
            metadata={
                "uri": dg.MetadataValue.path(uri),
                "latest": dg.MetadataValue.path(latest),
                "dagster/row_count": len(doc["files"]),
                "entities": dg.MetadataValue.json(doc["entities"]),
                "pruned_runs": dg.MetadataValue.json(
                    {"complete": pruned.complete, "partial": pruned.partial, "files": pruned.files}
                ),
                "deleted": dg.MetadataValue.json(
                    {t: len(n) for t, n in (doc["deleted"] or {}).items() if n}
                    if doc["deleted"] is not None
                    else doc["deleted_note"]
                ),
            }
        )

    return _manifest
