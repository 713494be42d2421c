"""Retention: keep the last N complete runs of each database, and no dead partial ones.

A database's files live under `runs/<run_id>/...` and end in `/<database>.<ext>` (the run's
manifest is `runs/<run_id>/manifest/<database>.json`). After a run publishes, the complete runs
of the database beyond the newest `keep` (by when they read the catalog) are deleted, never the
one `latest/` points at; so are the files of runs without a manifest that the caller says
failed or were cancelled: a run still writing is never touched.

Each manifest lists the database's complete runs left after its run (`complete_runs`), so the
next run lists only the folders of the runs it deletes: a listing of all of `runs/` (every run
of every database of the source: 27,000 files, 1.75 s on a local disk at 200 databases and 5
runs each) happens only when the caller has no such list (orchestration/manifest.py says when).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

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
    """What one pass removes, and the complete runs of the database it leaves."""

    complete: list[str] = field(default_factory=list)  # run ids
    partial: list[str] = field(default_factory=list)
    kept: list[tuple[str, float]] = field(default_factory=list)  # (run id, read at), newest first
    doomed: list[str] = field(default_factory=list)  # the keys to delete

    @property
    def files(self) -> int:
        return len(self.doomed)

    def history(self) -> list[dict[str, Any]]:
        """The manifest's `complete_runs`: what the next run prunes from, without a listing."""
        return [{"run_id": r, "catalog_read_at": t} for r, t in self.kept]


def plan_prune(
    store: ObjectStore,
    database: str,
    keep: int,
    this_run: tuple[str, float],
    latest_run: str,
    ended: Callable[[str], bool],
    history: list[dict[str, Any]] | None = None,
    recent: list[str] | None = None,
    protected: Iterable[str] = (),
    retry: Iterable[str] = (),
) -> Pruned:
    """What to delete of this database once this run (id, when it read the catalog) is
    published: its complete runs beyond the newest `keep` and the files of partial runs that
    `ended` says are over, never `latest_run` nor the `protected` runs whose files the latest
    output lists. With the previous manifest's `history` and the runs of the database that
    ended since (`recent`: a complete one missing from the history overlapped the previous
    run), only those runs' folders are listed (and the `retry` runs' a previous pass meant to
    delete) and their manifests read; without them, one listing of all of `runs/` and one read
    per manifest found."""
    names = _file_names(database)
    spared = {latest_run, this_run[0], *protected}
    if history is not None:
        complete = {h["run_id"]: float(h["catalog_read_at"] or 0) for h in history}
        unknown = [r for r in dict.fromkeys(recent or ()) if r not in complete and r != this_run[0]]
        found = {r: t for r in unknown if (t := _read_at(store, database, r)) is not None}
        complete.update(found)
        candidates = [r for r in unknown if r not in found and ended(r)]
        candidates += [r for r in retry if r not in complete and r not in candidates]
        complete[this_run[0]] = this_run[1]
        beyond = _beyond(complete, keep, spared)
        files = {r: _run_files(store, r, names) for r in dict.fromkeys((*beyond, *candidates))}
        partial = [r for r in candidates if r not in spared and files[r]]
    else:
        files = _all_run_files(store, names)
        complete = _complete_runs(store, database, files)
        complete[this_run[0]] = this_run[1]
        beyond = _beyond(complete, keep, spared)
        partial = [r for r in files if r not in complete and r not in spared and ended(r)]
    doomed = [k for r in (*beyond, *partial) for k in files.get(r, [])]
    kept = sorted(
        ((r, t) for r, t in complete.items() if r not in beyond), key=lambda x: x[1], reverse=True
    )
    return Pruned(beyond, partial, kept, doomed)


def apply_prune(store: ObjectStore, pruned: Pruned) -> Pruned:
    """Delete what `plan_prune` found."""
    if pruned.doomed:
        store.delete(pruned.doomed)
    return pruned


def _file_names(database: str) -> set[str]:
    segment = encode_segment(database)
    return {f"{segment}{ext}" for ext in (".parquet", ".json", ".jsonl")}


def _beyond(complete: dict[str, float], keep: int, spared: set[str]) -> list[str]:
    newest = sorted(complete, key=lambda r: complete[r], reverse=True)
    return [r for r in newest[keep:] if r not in spared]


def _mine(parts: list[str], names: set[str]) -> bool:
    """Whether a key (split at /) is a database's file: runs/<run>/<kind>/<asset>/<db>.<ext>,
    or runs/<run>/manifest/<db>.json."""
    structural = len(parts) >= 5 or (len(parts) == 4 and parts[2] == "manifest")
    return structural and parts[-1] in names


def _run_files(store: ObjectStore, run_id: str, names: set[str]) -> list[str]:
    return [k for k in store.list_keys(f"runs/{run_id}/") if _mine(k.split("/"), names)]


def _all_run_files(store: ObjectStore, names: set[str]) -> dict[str, list[str]]:
    files: dict[str, list[str]] = defaultdict(list)
    for key in store.list_keys("runs/"):
        parts = key.split("/")
        if _mine(parts, names):
            files[parts[1]].append(key)
    return files


def _read_at(store: ObjectStore, database: str, run_id: str) -> float | None:
    """When a run with a manifest of this database read the catalog (None: no manifest)."""
    data = store.read_bytes(f"runs/{run_id}/manifest/{encode_segment(database)}.json")
    return None if data is None else float(json.loads(data or b"{}").get("catalog_read_at") or 0)


def _complete_runs(
    store: ObjectStore, database: str, files: dict[str, list[str]]
) -> dict[str, float]:
    """The runs with a manifest of this database, and when each read the catalog."""
    manifest_key = f"manifest/{encode_segment(database)}.json"
    complete: dict[str, float] = {}
    for run_id, keys in files.items():
        if f"runs/{run_id}/{manifest_key}" in keys:
            complete[run_id] = _read_at(store, database, run_id) or 0.0
    return complete


def discard_run(store: ObjectStore, run_id: str, database: str | None) -> int:
    """Delete one run's files of one database (all its files when `database` is None): what a
    run that cannot finish (a full disk) wrote, so the space is there for the next one."""
    names = None if database is None else _file_names(database)
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
