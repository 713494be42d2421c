"""The Dagster instance of a headless command without DAGSTER_HOME: Dagster's ephemeral one,
whose in-memory storages keep one SQLite connection instead of opening a new one (and setting
two PRAGMAs) for every statement.

Dagster's in-memory storages connect afresh per call (NullPool), which was a fifth of a small
database's run in the CLI: each run stores ~150 events and looks up partitions, data versions
and materializations one statement at a time (bench/RESULTS.md). The storages are otherwise
Dagster's own; the held connection is the one they already keep open for the database's life.
What never changes under them (their tables) or changes only through them (the dynamic
partitions) is answered from memory, and the events only a UI's run view would read (outputs,
inputs, engine and resource notices, log lines: 88 of a database's 182) are not stored at all;
the console logger and the run's result still get every event. The latest materialization of
one asset partition, which every asset check looks up for its evaluation (29 a database), is
kept until the next materialization is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as db
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log import InMemoryEventLogStorage
from dagster._core.storage.event_log.base import AssetRecordsFilter
from dagster._core.storage.runs import InMemoryRunStorage


class _HeldConnection:
    """One connection for every call; re-entrant (a storage may call itself inside a call),
    one transaction around the outermost call, as Dagster's own `connect` gives."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.depth = 0
        conn.execute(db.text("PRAGMA foreign_keys=ON;")).close()  # per connection in SQLite
        conn.commit()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        with self.lock:
            if self.depth:
                yield self.conn
                return
            self.depth += 1
            try:
                with self.conn.begin():
                    yield self.conn
            finally:
                self.depth -= 1


# Read back from storage only by the UI (a run's log view, step stats), never by a run or by
# our steps, which look up materializations, check evaluations and run status events.
UNREAD_EVENTS = frozenset(
    {
        DagsterEventType.STEP_INPUT,
        DagsterEventType.STEP_OUTPUT,
        DagsterEventType.LOADED_INPUT,
        DagsterEventType.HANDLED_OUTPUT,
        DagsterEventType.ENGINE_EVENT,
        DagsterEventType.RESOURCE_INIT_STARTED,
        DagsterEventType.RESOURCE_INIT_SUCCESS,
        DagsterEventType.LOGS_CAPTURED,
    }
)


class HeldEventLogStorage(InMemoryEventLogStorage):
    """Dagster's in-memory event log on its one held connection, without the events no one
    reads back from a throwaway instance."""

    def __init__(self) -> None:
        super().__init__()
        self._held = _HeldConnection(self._held_conn)
        self._tables: dict[str, bool] = {}
        self._partitions: dict[tuple[str, str], bool] = {}  # only this storage changes them
        self._latest: dict[tuple[dg.AssetKey, str], Any] = {}  # latest materialization

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._held.connect() as conn:
            yield conn

    def store_event(self, event: Any) -> None:
        if event.dagster_event is None or event.dagster_event_type in UNREAD_EVENTS:
            return  # a log line, or an event only a run's log view shows
        if event.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION:
            self._latest.clear()
        super().store_event(event)

    def store_event_batch(self, events: Any) -> None:
        self._latest.clear()
        super().store_event_batch(events)

    def fetch_materializations(
        self, records_filter: Any, limit: int, cursor: str | None = None, ascending: bool = False
    ) -> Any:
        # what an asset check asks for its evaluation: the latest of one asset partition
        latest = (
            limit == 1
            and cursor is None
            and not ascending
            and isinstance(records_filter, AssetRecordsFilter)
            and len(records_filter.asset_partitions or ()) == 1
            and records_filter
            == AssetRecordsFilter(
                asset_key=records_filter.asset_key,
                asset_partitions=records_filter.asset_partitions,
            )
        )
        if not latest:
            return super().fetch_materializations(records_filter, limit, cursor, ascending)
        key = (records_filter.asset_key, records_filter.asset_partitions[0])
        if key not in self._latest:
            self._latest[key] = super().fetch_materializations(records_filter, 1)
        return self._latest[key]

    def delete_events(self, run_id: str) -> None:
        self._latest.clear()
        super().delete_events(run_id)

    def wipe(self) -> None:
        self._latest.clear()
        super().wipe()

    def wipe_asset(self, asset_key: dg.AssetKey) -> None:
        self._latest.clear()
        super().wipe_asset(asset_key)

    def wipe_asset_partitions(self, asset_key: dg.AssetKey, partition_keys: Any) -> None:
        self._latest.clear()
        super().wipe_asset_partitions(asset_key, partition_keys)

    def has_table(self, table_name: str) -> bool:
        # asked before many statements (asset checks, partitions); the tables were all
        # created with the storage and never change
        if table_name not in self._tables:
            with self._held.connect() as conn:
                self._tables[table_name] = bool(self._engine.dialect.has_table(conn, table_name))
        return self._tables[table_name]

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        # asked for every input and output of every step
        key = (partitions_def_name, partition_key)
        if key not in self._partitions:
            self._partitions[key] = super().has_dynamic_partition(*key)
        return self._partitions[key]

    def add_dynamic_partitions(self, partitions_def_name: str, partition_keys: Any) -> None:
        self._partitions.clear()
        super().add_dynamic_partitions(partitions_def_name, partition_keys)

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partitions.clear()
        super().delete_dynamic_partition(partitions_def_name, partition_key)


class HeldRunStorage(InMemoryRunStorage):
    """Dagster's in-memory run storage on its one held connection."""

    def __init__(self) -> None:
        super().__init__()
        self._held = _HeldConnection(self._held_conn)

    @contextmanager
    def connect(self) -> Iterator[Any]:  # type: ignore[override]
        with self._held.connect() as conn:
            yield conn


def ephemeral_instance() -> dg.DagsterInstance:
    """An ephemeral instance like `DagsterInstance.ephemeral()`, on held connections."""
    from dagster._core.instance.types import InstanceType
    from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
    from dagster._core.run_coordinator import DefaultRunCoordinator
    from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
    from dagster._core.storage.root import TemporaryLocalArtifactStorage

    return dg.DagsterInstance(
        instance_type=InstanceType.EPHEMERAL,
        local_artifact_storage=TemporaryLocalArtifactStorage(),
        run_storage=HeldRunStorage(),
        event_storage=HeldEventLogStorage(),
        compute_log_manager=NoOpComputeLogManager(),
        run_coordinator=DefaultRunCoordinator(),
        run_launcher=SyncInMemoryRunLauncher(),
    )
