"""Output targets (local folder and S3), run-scoped prefixes, manifests and cross-run loading."""

from __future__ import annotations

import json

import boto3
import dagster as dg
import pytest

from pg_metadata.orchestration.definitions import build_definitions
from pg_metadata_tests.pipeline import PipelineRun, make_source, plan_of, run_pipeline

pytestmark = pytest.mark.integration


def test_s3_target_through_endpoint(pg_cluster, catalog_db, s3_bucket, aws_env):
    target = f"s3://{s3_bucket}/catalog/prod"
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=target, include='{"^shop$": "*"}')
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    run_id = run.runs["shop"].run_id
    assert "catalog/prod/default/latest/shop.json" in keys
    assert f"catalog/prod/default/runs/{run_id}/transformed/column/shop.json" in keys
    assert f"catalog/prod/default/runs/{run_id}/raw/tables/shop.parquet" in keys
    manifest = json.loads(
        s3.get_object(Bucket=s3_bucket, Key="catalog/prod/default/latest/shop.json")["Body"].read()
    )
    assert all(
        f["uri"].startswith(f"s3://{s3_bucket}/catalog/prod/default/runs/")
        for f in manifest["files"]
    )
    columns = run.entities("shop", "transformed/column")
    assert len(columns) == manifest["entities"]["Column"] > 50
    assert not any(k.startswith("catalog/prod/.staging") for k in keys)


def test_failed_run_never_damages_latest(pg_cluster, catalog_db, tmp_path):
    reader = {"user": catalog_db.reader_user, "password": catalog_db.reader_password}
    source = make_source(pg_cluster, include='{"^shop$": "*"}', **reader)
    with dg.instance_for_test() as instance:
        good = run_pipeline(
            pg_cluster, instance, target=str(tmp_path), include='{"^shop$": "*"}', **reader
        )
        out = tmp_path / "default"
        before = (out / "latest" / "shop.json").read_bytes()
        # Same instance, but the catalog read now fails on the server (the reader may no longer
        # call format_type), so nothing of this run reaches the manifest.
        defs = build_definitions([source], target=str(tmp_path))
        fn = "pg_catalog.format_type(oid, integer)"
        pg_cluster.execute(f"REVOKE EXECUTE ON FUNCTION {fn} FROM PUBLIC", dbname="shop")
        try:
            bad = defs.resolve_job_def(plan_of(source).extract_job_name).execute_in_process(
                instance=instance, partition_key="shop", raise_on_error=False
            )
        finally:
            pg_cluster.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO PUBLIC", dbname="shop")
    assert not bad.success
    assert (out / "latest" / "shop.json").read_bytes() == before
    assert not (out / "runs" / bad.run_id / "manifest").exists()
    assert json.loads(before)["run_id"] == good.runs["shop"].run_id


def test_entities_load_raw_written_by_an_earlier_run(pg_cluster, catalog_db, tmp_path):
    source = make_source(pg_cluster, include='{"^shop$": "*"}')
    defs = build_definitions([source], target=str(tmp_path))
    raw = dg.AssetSelection.key_prefixes(["default", "raw"])
    with dg.instance_for_test() as instance:
        defs.resolve_job_def(plan_of(source).discover_job_name).execute_in_process(
            instance=instance
        )
        first = dg.materialize(
            list(defs.assets),
            instance=instance,
            partition_key="shop",
            selection=raw - dg.AssetSelection.assets(["default", "raw", "databases"]),
            resources=dict(defs.resources),
        )
        second = dg.materialize(
            list(defs.assets),
            instance=instance,
            partition_key="shop",
            selection=dg.AssetSelection.key_prefixes(["default", "atlan"], ["default", "output"]),
            resources=dict(defs.resources),
        )
        run = PipelineRun(instance, source, str(tmp_path), first)
        manifest = run.manifest("shop")
    assert first.success and second.success
    by_asset = {f["path"]: f["run_id"] for f in manifest["files"]}
    assert by_asset["raw/columns"] == first.run_id
    assert by_asset["transformed/column"] == second.run_id
    assert manifest["entities"]["Column"] > 50
