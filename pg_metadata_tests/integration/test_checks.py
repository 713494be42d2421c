"""The blocking asset checks catch corrupted entity output, and keep it from being published."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from pg_metadata.definitions import build_definitions
from pg_metadata_tests.pipeline import make_resources, run_pipeline

pytestmark = pytest.mark.integration


def check_results(defs, instance, key: list[str]) -> dict[str, bool]:
    """Run only the checks of one entity asset for partition shop."""
    result = defs.resolve_job_def("check_entities").execute_in_process(
        instance=instance,
        tags={"dagster/partition": "shop"},
        raise_on_error=False,
    )
    return {
        e.check_name: e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(key)
    }


def test_corrupted_output_fails_each_check(pg_cluster, catalog_db, tmp_path):
    with dg.instance_for_test() as instance:
        run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include='{"^shop$": "*"}')
        defs = build_definitions(*make_resources(pg_cluster, target=str(tmp_path)))
        assert set(check_results(defs, instance, ["atlan", "column"]).values()) == {True}

        column_file = run.store.fetch(run.file("shop", "atlan/column")["uri"])
        lines = column_file.read_text("utf-8").splitlines()
        orphan = json.loads(lines[1])
        orphan["attributes"].pop("table", None)
        orphan["attributes"].pop("view", None)
        orphan["attributes"]["qualifiedName"] += "-orphan"
        dangling = json.loads(lines[2])
        ref_key = next(
            k for k in ("table", "view", "tablePartition") if k in dangling["attributes"]
        )
        dangling["attributes"][ref_key]["uniqueAttributes"]["qualifiedName"] += "-missing"
        dangling["attributes"]["qualifiedName"] += "-dangling"
        corrupted = [lines[0], lines[0], json.dumps(orphan), json.dumps(dangling), *lines[3:]]
        column_file.write_text("\n".join(corrupted) + "\n", "utf-8")

        results = check_results(defs, instance, ["atlan", "column"])
    assert results == {
        "unique_qualified_names": False,  # lines[0] twice
        "references_resolve": False,  # dangling parent reference
        "counts_match_raw": False,  # one entity more than raw rows
        "one_parent_per_column": False,  # orphan has no parent
    }


def test_failed_blocking_check_stops_the_manifest(pg_cluster, catalog_db, tmp_path, monkeypatch):
    """Entities that would publish a dangling reference never reach the manifest."""
    from pg_metadata import entities

    original = entities.ref

    def broken_ref(type_name, qualified_name, with_attributes=True):
        if type_name == entities.DATABASE:  # schemas now point at a database nobody emits
            qualified_name = "nowhere"
        return original(type_name, qualified_name, with_attributes)

    monkeypatch.setattr(entities, "ref", broken_ref)
    postgres, catalog, output = make_resources(
        pg_cluster, target=str(tmp_path), include='{"^shop$": "*"}'
    )
    with dg.instance_for_test() as instance:
        defs = build_definitions(postgres=postgres, catalog=catalog, output=output)
        defs.resolve_job_def("discover_databases").execute_in_process(instance=instance)
        result = defs.resolve_job_def("extract_database").execute_in_process(
            instance=instance, partition_key="shop", raise_on_error=False
        )
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"references_resolve"}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "atlan/schema" in materialized and "output/manifest" not in materialized
    assert not (tmp_path / "latest").exists()
