"""The blocking asset checks catch corrupted entities as they are written, and keep them from
being published."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import dagster as dg
import pytest

from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration


def corrupted(columns: Iterator[dict]) -> Iterator[dict]:
    """The real column entities with a duplicate, an orphan and a dangling parent mixed in."""
    first, second, third = next(columns), next(columns), next(columns)
    orphan = copy.deepcopy(second)
    for key in ("table", "view", "tablePartition", "materialisedView"):
        orphan["attributes"].pop(key, None)
    orphan["attributes"]["qualifiedName"] += "-orphan"
    dangling = copy.deepcopy(third)
    ref_key = next(k for k in ("table", "view", "tablePartition") if k in dangling["attributes"])
    dangling["attributes"][ref_key]["uniqueAttributes"]["qualifiedName"] += "-missing"
    dangling["attributes"]["qualifiedName"] += "-dangling"
    yield from (first, first, orphan, dangling)
    yield from columns


def test_each_check_catches_its_corruption_while_writing(
    pg_cluster, catalog_db, tmp_path, monkeypatch
):
    from pg_metadata.atlan import columns

    real = columns.column_entities_from_batches
    monkeypatch.setattr(
        columns, "column_entities_from_batches", lambda *a: corrupted(iter(real(*a)))
    )
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": "*"}',
            raise_on_error=False,
        )
    result = run.runs["shop"]
    checks = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["default", "atlan", "column"])
    }
    assert {name: e.passed for name, e in checks.items()} == {
        "unique_qualified_names": False,  # the first column twice
        "references_resolve": False,  # dangling parent reference
        "counts_match_raw": False,  # one entity more than raw rows
        "one_parent_per_column": False,  # orphan has no parent
    }
    metadata = checks["references_resolve"].metadata
    assert metadata["problems"].value == 1 and "-missing" in metadata["examples"].value
    assert checks["unique_qualified_names"].metadata["problems"].value == 1
    assert not result.success
    assert not (tmp_path / "default" / "latest").exists()  # the manifest never ran


def test_failed_blocking_check_stops_the_manifest(pg_cluster, catalog_db, tmp_path, monkeypatch):
    """Entities that would publish a dangling reference never reach the manifest."""
    from pg_metadata.atlan import entities

    original = entities.ref

    def broken_ref(type_name, qualified_name, with_attributes=True):
        if type_name == entities.DATABASE:  # schemas now point at a database nobody emits
            qualified_name = "nowhere"
        return original(type_name, qualified_name, with_attributes)

    monkeypatch.setattr(entities, "ref", broken_ref)
    with dg.instance_for_test() as instance:
        run = run_pipeline(
            pg_cluster,
            instance,
            target=str(tmp_path),
            include='{"^shop$": "*"}',
            raise_on_error=False,
        )
    result = run.runs["shop"]
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"references_resolve"}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "default/atlan/schema" in materialized
    assert "default/output/manifest" not in materialized
    assert not (tmp_path / "default" / "latest").exists()


def test_one_object_asset_materializes_alone_with_its_checks(pg_cluster, catalog_db, tmp_path):
    """The object entities share a step; selecting one of them writes only that one, its
    references checked against names computed in the step (the schemas here), not written."""
    from pg_metadata.orchestration.definitions import build_definitions
    from pg_metadata_tests.pipeline import make_source

    source = make_source(pg_cluster, include='{"^shop$": "*"}')
    table = dg.AssetKey(["default", "atlan", "table"])
    with dg.instance_for_test() as instance:
        first = run_pipeline(pg_cluster, instance, target=str(tmp_path), include='{"^shop$": "*"}')
        defs = build_definitions([source], target=str(tmp_path))
        again = dg.materialize(
            list(defs.assets),
            instance=instance,
            partition_key="shop",
            selection=dg.AssetSelection.assets(table),
            resources=dict(defs.resources),
        )
        uri = instance.get_latest_materialization_event(table).asset_materialization.metadata["uri"]
        lines = first.store.fetch(str(uri.value)).read_text("utf-8").splitlines()
    assert again.success
    assert {m.asset_key for m in again.get_asset_materialization_events()} == {table}
    checks = {e.check_name: e.passed for e in again.get_asset_check_evaluations()}
    assert checks == {
        "unique_qualified_names": True,
        "references_resolve": True,
        "counts_match_raw": True,
    }
    before = first.entities("shop", "transformed/table")
    assert len(lines) == len(before) > 0
    assert [json.loads(x)["attributes"]["qualifiedName"] for x in lines] == [
        e["attributes"]["qualifiedName"] for e in before
    ]
