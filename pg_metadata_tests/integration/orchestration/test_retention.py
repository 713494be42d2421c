"""Old runs are pruned after each publish: the newest N complete runs of a database stay."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration


def _runs_with_manifest(store, db: str) -> set[str]:
    return {k.split("/")[1] for k in store.list_keys("runs/") if k.endswith(f"manifest/{db}.json")}


def test_only_the_newest_complete_runs_are_kept(pg_cluster, catalog_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PG_METADATA_KEEP_RUNS", "2")
    db = catalog_db.shop
    run_ids = []
    with dg.instance_for_test() as instance:
        for _ in range(3):
            run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include={f"^{db}$": "*"})
            run_ids.append(run.runs[db].run_id)
    store = run.store
    assert _runs_with_manifest(store, db) == set(run_ids[1:])
    assert not [k for k in store.list_keys("runs/") if k.startswith(f"runs/{run_ids[0]}/")]
    latest = json.loads(store.read_bytes(f"latest/{db}.json"))
    assert latest["run_id"] == run_ids[2]
    for f in latest["files"]:  # everything the latest manifest lists is still there
        assert store.fetch(f["uri"]).exists()
    # the previous output (deletions are computed against it) is intact too
    kept = json.loads(store.read_bytes(f"runs/{run_ids[1]}/manifest/{db}.json"))
    assert all(store.fetch(f["uri"]).exists() for f in kept["files"] if f["run_id"] == run_ids[1])
    # the third run says what it pruned
    events = run.runs[db].all_events
    pruned = [
        e.step_materialization_data.materialization.metadata["pruned_runs"].value
        for e in events
        if e.is_step_materialization
        and "pruned_runs" in e.step_materialization_data.materialization.metadata
    ]
    assert pruned and pruned[0]["complete"] == [run_ids[0]] and pruned[0]["files"] > 10


def test_a_bad_retention_setting_is_one_line(pg_cluster, catalog_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PG_METADATA_KEEP_RUNS", "none")
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include={f"^{catalog_db.shop}$": "*"},
            raise_on_error=False,
        )
    from pg_metadata.orchestration.run_results import failure_line

    assert not run.runs  # refused in the first step, before any catalog was read
    line = failure_line(run.discover.all_events)
    assert line == "PG_METADATA_KEEP_RUNS='none' must be a whole number of runs, at least 1"
