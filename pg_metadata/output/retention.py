"""Retention: keep the last N complete runs of each database, and no dead partial ones.

A database's files live under `runs/<run_id>/...` and end in `/<database>.<ext>` (the run's
manifest is `runs/<run_id>/manifest/<database>.json`). After a run publishes, the complete runs
of the database beyond the newest `keep` (by when they read the catalog) are deleted, never the
one `latest/` points at; so are the files of runs without a manifest that the caller says
failed or were cancelled: a run still writing is never touched.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from pg_metadata.catalog.reader import SPOOL_PREFIX
from pg_metadata.errors import ConfigError
from pg_metadata.output.storage import ObjectStore, encode_segment

KEEP_ENV = "PG_METADATA_KEEP_RUNS"
STALE_AFTER_S = 24 * 3600  # longer than any plausible run: what is older was left by a crash
LOCAL_PREFIXES = (SPOOL_PREFIX,)  # catalog spools: one per read, gone when it ends
DEFAULT_KEEP = 5


def keep_runs(env: dict[str, str] | None = None) -> int:
    """How many complete runs of a database to keep (PG_METADATA_KEEP_RUNS, default 5)."""
    text = (os.environ if env is None else env).get(KEEP_ENV, "").strip()
    if not text:
        return DEFAULT_KEEP
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{KEEP_ENV}={text!r} must be a whole number of runs, at least 1")
    return int(text)


@dataclass
class Pruned:
    """What one pass removed."""

    complete: list[str] = field(default_factory=list)  # run ids
    partial: list[str] = field(default_factory=list)
    files: int = 0


def prune(
    store: ObjectStore,
    database: str,
    keep: int,
    latest_run: str,
    ended: Callable[[str], bool],
) -> Pruned:
    """Delete this database's files of complete runs beyond the newest `keep` and of partial
    runs that `ended` says are over. One listing of `runs/`, one read per manifest."""
    segment = encode_segment(database)
    names = {f"{segment}{ext}" for ext in (".parquet", ".json", ".jsonl")}
    files: dict[str, list[str]] = defaultdict(list)
    for key in store.list_keys("runs/"):
        # runs/<run>/<kind>/<asset>/<db>.<ext>, or runs/<run>/manifest/<db>.json
        parts = key.split("/")
        mine = len(parts) >= 5 or (len(parts) == 4 and parts[2] == "manifest")
        if mine and parts[-1] in names:
            files[parts[1]].append(key)
    manifest_key = f"manifest/{segment}.json"
    complete: dict[str, float] = {}
    for run_id, keys in files.items():
        if f"runs/{run_id}/{manifest_key}" in keys:
            data = store.read_bytes(f"runs/{run_id}/{manifest_key}") or b"{}"
            doc = json.loads(data)
            complete[run_id] = float(doc.get("catalog_read_at") or 0)
    newest = sorted(complete, key=lambda r: complete[r], reverse=True)
    result = Pruned()
    for run_id in newest[keep:]:
        if run_id != latest_run:
            result.complete.append(run_id)
    for run_id in files:
        if run_id not in complete and run_id != latest_run and ended(run_id):
            result.partial.append(run_id)
    doomed = [k for r in (*result.complete, *result.partial) for k in files[r]]
    if doomed:
        store.delete(doomed)
    result.files = len(doomed)
    return result


def discard_run(store: ObjectStore, run_id: str, database: str | None) -> int:
    """Delete one run's files of one database (all its files when `database` is None): what a
    run that cannot finish (a full disk) wrote, so the space is there for the next one."""
    names = None
    if database is not None:
        segment = encode_segment(database)
        names = {f"{segment}{ext}" for ext in (".parquet", ".json", ".jsonl")}
    doomed = [
        k for k in store.list_keys(f"runs/{run_id}/") if names is None or k.split("/")[-1] in names
    ]
    if doomed:
        store.delete(doomed)
    return len(doomed)


def sweep_leftovers(store: ObjectStore, now: float | None = None) -> int:
    """Remove what killed runs left behind: staging parts and incomplete multipart uploads in
    the store, and catalog spool folders in the temp dir, all older than a
    day (a run still going is younger). Returns how many were removed."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    older_than = (time.time() if now is None else now) - STALE_AFTER_S
    removed = store.sweep(older_than)
    for folder in Path(tempfile.gettempdir()).iterdir():
        if folder.name.startswith(LOCAL_PREFIXES) and folder.is_dir():
            try:
                stale = folder.stat().st_mtime < older_than
            except OSError:
                continue
            if stale:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed
