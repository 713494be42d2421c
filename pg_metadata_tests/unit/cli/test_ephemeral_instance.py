"""The CLI's throwaway Dagster instance keeps one connection per storage and answers as
Dagster's own ephemeral instance does."""

import dagster as dg

from pg_metadata.orchestration.ephemeral import ephemeral_instance

TENANTS = dg.DynamicPartitionsDefinition(name="tenants")


@dg.asset(partitions_def=TENANTS, check_specs=[dg.AssetCheckSpec("rows", asset="numbers")])
def numbers(context: dg.AssetExecutionContext):
    yield dg.Output([1, 2, 3], metadata={"dagster/row_count": 3})
    yield dg.AssetCheckResult(passed=context.partition_key != "b", check_name="rows")


@dg.asset(partitions_def=TENANTS)
def doubled(numbers: list[int]) -> list[int]:
    return [n * 2 for n in numbers]


def _run_both(instance: dg.DagsterInstance) -> list[tuple[str, ...]]:
    """Two partitions, the second run reading the first's data version: what was recorded."""
    instance.add_dynamic_partitions("tenants", ["a", "b"])
    job = dg.Definitions(
        assets=[numbers, doubled], jobs=[dg.define_asset_job("all")]
    ).resolve_job_def("all")
    seen = []
    for key in ("a", "b"):
        result = job.execute_in_process(instance=instance, partition_key=key)
        assert result.success
        seen.append(tuple(e.event_type_value for e in result.all_events))
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("doubled"), asset_partitions=["b"]), limit=1
    ).records[0]
    seen.append(tuple(sorted(latest.event_log_entry.asset_materialization.tags)))
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("numbers"), "rows"), limit=10
    )
    seen.append(tuple(str(c.status) for c in checks))
    seen.append(tuple(instance.get_dynamic_partitions("tenants")))
    return seen


def test_runs_record_what_dagsters_ephemeral_instance_records():
    ours = _run_both(ephemeral_instance())
    assert ours == _run_both(dg.DagsterInstance.ephemeral())
    assert "dagster/input_data_version/numbers" in ours[2]  # data versions are tracked
    assert ours[-1] == ("a", "b")


def test_a_storage_calling_itself_inside_a_call_shares_the_transaction():
    instance = ephemeral_instance()
    storage = instance.run_storage
    with storage.connect() as outer, storage.connect() as inner:
        assert inner is outer
    assert instance.is_ephemeral and instance.get_runs() == []


def test_partitions_asked_for_follow_their_changes():
    instance = ephemeral_instance()
    assert not instance.has_dynamic_partition("tenants", "a")
    instance.add_dynamic_partitions("tenants", ["a"])
    assert instance.has_dynamic_partition("tenants", "a")
    instance.delete_dynamic_partition("tenants", "a")
    assert not instance.has_dynamic_partition("tenants", "a")
