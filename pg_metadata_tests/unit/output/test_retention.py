"""Pruning from the manifest's list of complete runs (and the runs that ended since) lists
only the runs it deletes, and decides exactly what one listing of all of `runs/` decides."""

from __future__ import annotations

import json
from pathlib import Path

from pg_metadata.output.retention import apply_prune, plan_prune
from pg_metadata.output.storage import LocalStore

FILES = ("raw/tables/{db}.parquet", "entities/table/{db}.jsonl", "entities/table/{db}.json")


class CountingStore(LocalStore):
    """A local store that remembers every prefix it was asked to list."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: list[str] = []

    def list_keys(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().list_keys(prefix)


def _run(root: Path, run_id: str, db: str, read_at: float | None) -> None:
    for f in FILES:
        path = root / "runs" / run_id / f.format(db=db)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    if read_at is not None:  # a complete run: it has a manifest
        manifest = root / "runs" / run_id / "manifest" / f"{db}.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"run_id": run_id, "catalog_read_at": read_at}))


def _layout(root: Path) -> None:
    for i in range(4):  # complete runs of `a`, c0 oldest
        _run(root, f"c{i}", "a", 100.0 + i)
    _run(root, "dead", "a", None)  # failed, no manifest
    _run(root, "busy", "a", None)  # still writing: no manifest, not ended
    _run(root, "late", "a", 150.0)  # overlapped the previous run: complete, not in its history
    for i in range(6):  # another database's runs: never touched, never listed from history
        _run(root, f"b{i}", "b", 100.0 + i)
    _run(root, "new", "a", None)  # this run, whose manifest is about to be written


def _keys(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_history_prunes_what_the_listing_prunes_and_lists_only_those_runs(tmp_path):
    ended = {"dead"}.__contains__
    listed_root, history_root = tmp_path / "listed", tmp_path / "history"
    for root in (listed_root, history_root):
        _layout(root)
    by_listing = CountingStore(listed_root)
    full = plan_prune(by_listing, "a", 2, ("new", 200.0), "new", ended)
    by_history = CountingStore(history_root)
    history = [{"run_id": f"c{i}", "catalog_read_at": 100.0 + i} for i in (3, 2, 1, 0)]
    known = plan_prune(
        by_history, "a", 2, ("new", 200.0), "new", ended, history, ["dead", "busy", "late", "c3"]
    )

    assert full.complete == known.complete == ["c3", "c2", "c1", "c0"]
    assert full.partial == known.partial == ["dead"]
    assert full.kept == known.kept == [("new", 200.0), ("late", 150.0)]
    assert sorted(full.doomed) == sorted(known.doomed) and full.files == known.files == 19
    assert by_listing.listed == ["runs/"]
    expected = ["runs/c0/", "runs/c1/", "runs/c2/", "runs/c3/", "runs/dead/"]
    assert sorted(by_history.listed) == expected

    apply_prune(by_listing, full)
    apply_prune(by_history, known)
    assert _keys(listed_root) == _keys(history_root)
    left = {k.split("/")[1] for k in _keys(history_root)}
    assert left == {"new", "late", "busy"} | {f"b{i}" for i in range(6)}
    assert known.history() == [
        {"run_id": "new", "catalog_read_at": 200.0},
        {"run_id": "late", "catalog_read_at": 150.0},
    ]


def test_the_run_latest_points_at_is_kept_beyond_the_count(tmp_path):
    _layout(tmp_path)
    store = CountingStore(tmp_path)
    history = [{"run_id": f"c{i}", "catalog_read_at": 100.0 + i} for i in (3, 2, 1, 0)]
    pruned = plan_prune(store, "a", 1, ("new", 200.0), "c0", lambda r: False, history, [])
    assert pruned.complete == ["c3", "c2", "c1"]  # c0 is behind latest/: it stays
    assert "late" not in {r for r, _ in pruned.kept}  # not known: only a full listing finds it
    assert [r for r, _ in pruned.kept] == ["new", "c0"]


def test_a_delete_that_failed_is_finished_and_listed_files_stay(tmp_path):
    _layout(tmp_path)
    store = CountingStore(tmp_path)
    # the previous pass meant to delete c0 and c1 (its list no longer has them) but stopped
    history = [{"run_id": f"c{i}", "catalog_read_at": 100.0 + i} for i in (3, 2)]
    pruned = plan_prune(
        store, "a", 2, ("new", 200.0), "new", lambda r: False, history, [], retry=["c0", "c1"]
    )
    assert sorted(pruned.partial) == ["c0", "c1"] and pruned.complete == ["c2"]
    # c3 is beyond the count too, but the latest output lists one of its files
    protected = plan_prune(
        store, "a", 1, ("new", 200.0), "new", lambda r: False, history, [], protected={"c3"}
    )
    assert protected.complete == ["c2"] and [r for r, _ in protected.kept] == ["new", "c3"]
    apply_prune(store, pruned)
    assert not {k.split("/")[1] for k in _keys(tmp_path)} & {"c0", "c1", "c2"}
