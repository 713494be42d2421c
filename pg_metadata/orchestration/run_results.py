"""What a finished run produced, read back from its events: the one-line failure, the manifest.

Shared by the CLI (events of an in-process result) and the REST API (events in the instance).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import dagster as dg

FALLBACK = "the run failed; see its log in the Dagster UI (or rerun the CLI with --verbose)"
INTERRUPTED = "interrupted (a stop signal); nothing of this run was published"
_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def root_cause(error: Any) -> str:
    """The message of the error Dagster wrapped (DagsterExecutionHandleOutputError and co.
    carry the real one as their cause), on one line, never a wrapper's class name."""
    seen = error
    while seen is not None and seen.cls_name.startswith("Dagster") and (seen.cause or seen.context):
        seen = seen.cause or seen.context
    text = " ".join(seen.message.split())
    if seen.cls_name.startswith("Dagster"):
        return FALLBACK
    # "pg_metadata.errors.OutputError: cannot write ..." -> "cannot write ..."
    text = re.sub(rf"^[\w.]*\b{re.escape(seen.cls_name)}: ", "", text)
    return text or seen.cls_name


def interrupted(events: Iterable[dg.DagsterEvent]) -> bool:
    """Whether a run ended because it was interrupted (Ctrl-C, SIGTERM, a cancel)."""
    return any(
        event.is_step_failure
        and event.step_failure_data.error is not None
        and event.step_failure_data.error.cls_name in _INTERRUPTS
        for event in events
    )


def failure_line(events: Iterable[dg.DagsterEvent]) -> str:
    """The one-line reason a run failed: the first failing step's own message."""
    events = list(events)
    if interrupted(events):
        return INTERRUPTED
    for event in events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description
            if data.error is not None:
                return root_cause(data.error)
        if event.is_run_failure and event.message and "step" not in event.message.lower():
            return " ".join(event.message.split())
    return FALLBACK


def manifest_of(events: Iterable[dg.DagsterEvent]) -> dict[str, Any] | None:
    """`{entities, latest, uri}` of the manifest a run published, or None."""
    for event in events:
        if not event.is_step_materialization:
            continue
        metadata = event.step_materialization_data.materialization.metadata
        if "entities" in metadata and "latest" in metadata:
            entities = metadata["entities"].value
            return {
                "entities": dict(entities) if isinstance(entities, dict) else json.loads(entities),
                "latest": str(metadata["latest"].value),
                "uri": str(metadata["uri"].value) if "uri" in metadata else None,
            }
    return None


def run_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    """The Dagster events of a run in the instance (failures and materializations)."""
    types = (
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.RUN_FAILURE,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
    )
    events = []
    for event_type in types:
        records = instance.get_records_for_run(run_id, of_type=event_type, limit=1000).records
        events += [
            r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event
        ]
    return events
