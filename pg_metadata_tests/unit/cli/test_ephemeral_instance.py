"""The CLI's throwaway Dagster instance keeps one connection per storage and answers as
Dagster's own ephemeral instance does."""

from collections import Counter

import dagster as dg

from pg_metadata.orchestration.ephemeral import UNREAD_EVENTS, ephemeral_instance

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


def _stored(instance: dg.DagsterInstance) -> Counter:
    return Counter(
        e.dagster_event_type for r in instance.get_runs() for e in instance.all_logs(r.run_id)
    )


def test_only_the_events_a_run_log_view_alone_reads_are_left_out():
    ours, dagsters = ephemeral_instance(), dg.DagsterInstance.ephemeral()
    _run_both(ours)
    _run_both(dagsters)
    expected = {t: n for t, n in _stored(dagsters).items() if t and t not in UNREAD_EVENTS}
    assert _stored(ours) == Counter(expected)
    assert _stored(ours)[dg.DagsterEventType.ASSET_MATERIALIZATION] == 4
    assert _stored(ours)[dg.DagsterEventType.ASSET_CHECK_EVALUATION] == 2
    assert _stored(ours)[dg.DagsterEventType.RUN_SUCCESS] == 2
    assert sum(_stored(ours).values()) < sum(_stored(dagsters).values()) * 0.7


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


def test_the_latest_materialization_follows_every_new_one():
    instance = ephemeral_instance()
    instance.add_dynamic_partitions("tenants", ["a"])
    job = dg.Definitions(assets=[numbers], jobs=[dg.define_asset_job("one")]).resolve_job_def("one")
    latest = dg.AssetRecordsFilter(asset_key=dg.AssetKey("numbers"), asset_partitions=["a"])
    for _ in range(3):
        run = job.execute_in_process(instance=instance, partition_key="a")
        found = instance.fetch_materializations(latest, limit=1).records
        assert [r.run_id for r in found] == [run.run_id]
        check = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("numbers"), "rows"), limit=1
        )[0]
        target = check.evaluation.target_materialization_data
        assert (target.run_id, target.storage_id) == (run.run_id, found[0].storage_id)
    every = instance.fetch_materializations(dg.AssetKey("numbers"), limit=10).records
    assert len(every) == 3  # other queries are Dagster's own
