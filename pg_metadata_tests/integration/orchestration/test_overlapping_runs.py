"""Two runs of one database on one instance, overlapping, with the catalog changed between
their reads: each run's output is its own, and `latest/` only moves forward."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import dagster as dg
import pytest

from pg_metadata.orchestration.definitions import build_definitions
from pg_metadata.orchestration.io_manager import CatalogIOManager
from pg_metadata.orchestration.plan import RAW_PATHS
from pg_metadata.output.storage import open_store
from pg_metadata_tests.pipeline import make_source, plan_of

pytestmark = pytest.mark.integration
DB = "pgm_overlap"


def test_overlapping_runs_never_mix_and_latest_moves_forward(
    pg_cluster, tmp_path: Path, monkeypatch
):
    pg_cluster.drop_database(DB)
    pg_cluster.create_database(
        DB, "CREATE TABLE t (a int, b int); CREATE VIEW v AS SELECT a FROM t;"
    )
    source = make_source(pg_cluster, include={f"^{DB}$": "*"})
    plan = plan_of(source)
    target = str(tmp_path / "out")
    defs = build_definitions([source], target=target)
    columns_key = plan.key(RAW_PATHS["columns"])

    # Run A stops right before its column step loads the raw columns it read; meanwhile the
    # catalog changes and run B reads and publishes the whole database.
    paused, resume = threading.Event(), threading.Event()
    load_input = CatalogIOManager.load_input

    def pausing_load_input(self, context):
        if threading.current_thread().name == "run-a" and context.asset_key == columns_key:
            paused.set()
            assert resume.wait(120)
        return load_input(self, context)

    monkeypatch.setattr(CatalogIOManager, "load_input", pausing_load_input)
    with dg.instance_for_test() as instance:
        discover = defs.resolve_job_def(plan.discover_job_name).execute_in_process(
            instance=instance
        )
        job = defs.resolve_job_def(plan.extract_job_name)
        results: dict[str, dg.ExecuteInProcessResult] = {}

        def run_a() -> None:
            results["a"] = job.execute_in_process(
                instance=instance, partition_key=DB, raise_on_error=False
            )

        thread = threading.Thread(target=run_a, name="run-a")
        thread.start()
        try:
            assert paused.wait(120), "run A never reached its column step"
            pg_cluster.execute(
                "ALTER TABLE t ADD COLUMN c int; CREATE TABLE t2 (x int, y int);", dbname=DB
            )
            b = job.execute_in_process(instance=instance, partition_key=DB)
        finally:
            resume.set()
            thread.join(120)
        a = results["a"]
        assert a.success and b.success
        latest_before_c = json.loads(
            open_store(target, source.name).read_bytes(f"latest/{DB}.json")
        )
        c = job.execute_in_process(instance=instance, partition_key=DB)  # a later refresh

    store = open_store(target, source.name)

    def manifest(key: str) -> dict:
        data = store.read_bytes(key)
        assert data is not None, key
        return json.loads(data)

    mine_a = manifest(f"runs/{a.run_id}/manifest/{DB}.json")
    mine_b = manifest(f"runs/{b.run_id}/manifest/{DB}.json")
    # each manifest lists its own run's files (raw/databases is the discovery run's)
    for doc, run in ((mine_a, a), (mine_b, b)):
        runs = {f["run_id"] for f in doc["files"] if f["path"] != RAW_PATHS["databases"]}
        assert runs == {run.run_id}, doc["files"]
        databases = next(f for f in doc["files"] if f["path"] == RAW_PATHS["databases"])
        assert databases["run_id"] == discover.run_id
    # A read the catalog before the change, B after; A's entities are A's catalog throughout
    assert (mine_a["entities"]["Table"], mine_a["entities"]["Column"]) == (1, 3)  # t(a, b), v(a)
    assert (mine_b["entities"]["Table"], mine_b["entities"]["Column"]) == (2, 6)
    columns = store.fetch(
        next(f["uri"] for f in mine_a["files"] if f["path"] == "transformed/column")
    )
    names = [
        json.loads(line)["attributes"]["qualifiedName"] for line in columns.read_text().splitlines()
    ]
    assert not any(n.endswith(("/t/c", "/t2/x", "/t2/y")) for n in names), names

    # A finished last but read first: latest/ stays on B, and A says so
    assert latest_before_c["run_id"] == b.run_id
    assert mine_a["deleted"] is None
    assert mine_a["deleted_note"].startswith(f"latest/ stays on run {b.run_id}")
    assert mine_a["catalog_read_at"] < mine_b["catalog_read_at"]
    # A is in no earlier manifest's list of complete runs; the next run finds it among the
    # runs that ended since B, so retention still counts (and will prune) it
    history = [r["run_id"] for r in manifest(f"latest/{DB}.json")["complete_runs"]]
    assert history == [c.run_id, b.run_id, a.run_id]
