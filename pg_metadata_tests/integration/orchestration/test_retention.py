"""Old runs are pruned after each publish: the newest N complete runs of a database stay."""

from __future__ import annotations

import json
import os
import tempfile
import time

import boto3
import dagster as dg
import pytest

from pg_metadata.output.storage import open_store
from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration


def _runs_with_manifest(store, db: str) -> set[str]:
    return {k.split("/")[1] for k in store.list_keys("runs/") if k.endswith(f"manifest/{db}.json")}


def _runs_with_files(store, databases: tuple[str, ...]) -> set[str]:
    names = tuple(f"/{d}." for d in databases)
    return {k.split("/")[1] for k in store.list_keys("runs/") if any(n in k for n in names)}


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
    # what the next run prunes from, newest first
    assert [r["run_id"] for r in latest["complete_runs"]] == run_ids[:0:-1]
    assert latest["pruning"] == [run_ids[0]]  # a delete that fails is finished by the next run
    first = json.loads(store.read_bytes(f"runs/{run_ids[1]}/manifest/{db}.json"))
    assert latest["listed_at"] == first["listed_at"]  # listed all of runs/ once, for the first
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


def test_a_failed_runs_files_go_and_an_older_manifest_is_pruned_by_listing(
    pg_cluster, catalog_db, tmp_path, monkeypatch
):
    """Files a failed run of the database left go with the next complete run; a latest/
    manifest without `complete_runs` (an older version's) still has its old runs pruned."""
    from dagster._core.test_utils import create_run_for_test

    monkeypatch.setenv("PG_METADATA_KEEP_RUNS", "1")
    db = catalog_db.shop
    include = {f"^{db}$": "*"}
    with dg.instance_for_test() as instance:
        first = run_pipeline(pg_cluster, instance, target=str(tmp_path), include=include)
        store = first.store
        first_id = first.runs[db].run_id
        latest = json.loads(store.read_bytes(f"latest/{db}.json"))
        del latest["complete_runs"]  # as the manifest of a version before the list
        store.publish_bytes(json.dumps(latest).encode(), f"latest/{db}.json")
        failed = create_run_for_test(
            instance, status=dg.DagsterRunStatus.FAILURE, tags={"dagster/partition": db}
        )
        other = create_run_for_test(  # another database's failed run: not this one's to prune
            instance, status=dg.DagsterRunStatus.FAILURE, tags={"dagster/partition": "other"}
        )
        for run_id, name in ((failed.run_id, db), (other.run_id, "other")):
            store.publish_bytes(b"partial", f"runs/{run_id}/raw/tables/{name}.parquet")

        second = run_pipeline(pg_cluster, instance, target=str(tmp_path), include=include)
        second_id = second.runs[db].run_id
        runs = _runs_with_files(store, (db, "other"))
        assert first_id not in runs and failed.run_id not in runs  # by one listing
        assert other.run_id in runs and second_id in runs

        store.publish_bytes(b"partial", f"runs/{failed.run_id}/raw/tables/{db}.parquet")
        third = run_pipeline(pg_cluster, instance, target=str(tmp_path), include=include)
        runs = _runs_with_files(store, (db, "other"))
        assert runs == {third.runs[db].run_id, other.run_id}  # from the list, and the instance


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


def test_leftovers_of_killed_runs_are_swept(pg_cluster, catalog_db, tmp_path, monkeypatch):
    """A spool folder and a staging part from a day ago go; this minute's stay."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    tempfile.tempdir = None  # re-read TMPDIR
    out = tmp_path / "out"
    staging = out / "default" / ".staging"
    staging.mkdir(parents=True)
    day_ago = time.time() - 25 * 3600
    old_spool, new_spool = temp / "pg_metadata_spool_old", temp / "pg_metadata_spool_new"
    old_part, new_part = staging / "x-raw.tables.part", staging / "y-raw.tables.part"
    for path in (old_spool, new_spool):
        path.mkdir()
    for path in (old_part, new_part):
        path.write_text("partial")
    os.utime(old_spool, (day_ago, day_ago))
    os.utime(old_part, (day_ago, day_ago))
    try:
        with dg.instance_for_test() as instance:
            run = run_pipeline(
                pg_cluster, instance, target=str(out), include={f"^{catalog_db.shop}$": "*"}
            )
    finally:
        tempfile.tempdir = None
    assert run.runs[catalog_db.shop].success
    assert not old_spool.exists() and not old_part.exists()
    assert new_spool.exists() and new_part.exists()


def test_incomplete_multipart_uploads_are_aborted(aws_env, s3_bucket):
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.create_multipart_upload(Bucket=s3_bucket, Key="catalog/default/runs/r1/raw/tables/x.parquet")
    s3.create_multipart_upload(Bucket=s3_bucket, Key="elsewhere/not-ours.bin")
    store = open_store(f"s3://{s3_bucket}/catalog", "default")
    # (moto reports every upload as initiated in 2010, so only the cut-off in the future is
    # meaningful here; the age test itself is the same comparison as for staging files)
    assert store.sweep(older_than=time.time() + 60) == 1
    left = s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [u["Key"] for u in left] == ["elsewhere/not-ours.bin"]  # only under our prefix
