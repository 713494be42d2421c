"""Workflows: one /start of a source, as Dagster runs launched through the webserver.

A workflow is a set of runs tagged `pg_metadata/workflow_id`: a discovery run when the source's
database list or partitions are behind, then one extract run per database. Runs are launched
with the Dagster GraphQL client, so they go through the instance's run coordinator (queues,
pools and tag limits apply) and show in the UI. Everything about a workflow lives in its runs'
tags (the secret-free configuration, the stop request), so status survives an API restart and
a restarted API resumes a workflow whose discovery finished while it was down.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import dagster as dg

from pg_metadata import telemetry
from pg_metadata.api.metrics import ApiMetrics
from pg_metadata.catalog.preflight import check_source_patterns
from pg_metadata.catalog.sources import Source
from pg_metadata.errors import ConfigError, PgMetadataError
from pg_metadata.orchestration.automation import list_databases, listed_databases
from pg_metadata.orchestration.overrides import overrides_tag
from pg_metadata.orchestration.plan import PARTITION_TAG, SourcePlan
from pg_metadata.orchestration.run_results import failure_line, manifest_of, run_events
from pg_metadata.orchestration.tracing import PARENT_TAG
from pg_metadata.orchestration.translator import PostgresCatalogTranslator

WORKFLOW_TAG = "pg_metadata/workflow_id"
CONFIG_TAG = "pg_metadata/workflow"
STEP_TAG = "pg_metadata/workflow_step"  # discover | extract
STOP_TAG = "pg_metadata/stop_requested"
ERROR_TAG = "pg_metadata/workflow_error"
POLL_SECONDS = 0.5

_STATE = {
    dg.DagsterRunStatus.QUEUED: "queued",
    dg.DagsterRunStatus.NOT_STARTED: "queued",
    dg.DagsterRunStatus.STARTING: "running",
    dg.DagsterRunStatus.STARTED: "running",
    dg.DagsterRunStatus.SUCCESS: "success",
    dg.DagsterRunStatus.FAILURE: "failure",
    dg.DagsterRunStatus.CANCELING: "canceling",
    dg.DagsterRunStatus.CANCELED: "canceled",
}
TERMINAL = ("success", "failure", "canceled")
CANCELABLE = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTED,
)
log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request that cannot be served: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Launcher(Protocol):
    """Launches and cancels runs of the deployment's jobs."""

    def submit(self, job_name: str, tags: Mapping[str, str]) -> str: ...

    def terminate(self, run_ids: Sequence[str]) -> None: ...

    def ping(self) -> str: ...


class GraphQLLauncher:
    """Through the Dagster webserver's GraphQL API (dagster-graphql's public client)."""

    def __init__(self, url: str) -> None:
        from dagster_graphql import DagsterGraphQLClient

        self.url = url
        parsed = urlparse(url)
        self.client = DagsterGraphQLClient(
            parsed.hostname or "127.0.0.1",
            port_number=parsed.port,
            use_https=parsed.scheme == "https",
            path_prefix=parsed.path.rstrip("/"),
            timeout=30,
        )

    def _unreachable(self, exc: Exception, what: str) -> ApiError:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return ApiError(
            503,
            f"the Dagster webserver at {self.url} {what}: {reason} (start `dg dev` or "
            "dagster-webserver and dagster-daemon on this instance, or set "
            "PG_METADATA_DAGSTER_URL)",
        )

    def submit(self, job_name: str, tags: Mapping[str, str]) -> str:
        try:
            return self.client.submit_job_execution(job_name, tags=dict(tags))
        except Exception as exc:
            raise self._unreachable(exc, "did not launch the run") from None

    def terminate(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            try:
                self.client.terminate_run(run_id)
            except Exception as exc:
                raise self._unreachable(exc, f"did not cancel run {run_id}") from None

    def ping(self) -> str:
        try:
            self.client._execute("{ version }")  # the smallest query the webserver answers
        except Exception as exc:
            raise self._unreachable(exc, "does not answer") from None
        return f"Dagster webserver at {self.url} answers"


@dataclass
class WorkflowConfig:
    """What a workflow extracts; stored in its runs' tags (no secrets)."""

    workflow_id: str
    source: str
    databases: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkflowConfig:
        return cls(**json.loads(text))

    def public(self) -> dict[str, Any]:
        """The configuration as /config returns it."""
        return {
            "workflow_id": self.workflow_id,
            "source": self.source,
            "databases": self.databases,
            "metadata": {
                "include-filter": self.overrides.get("include"),
                "exclude-filter": self.overrides.get("exclude"),
                "temp-table-regex": self.overrides.get("temp_table_regex"),
            },
        }


def new_workflow_id() -> str:
    """A fresh workflow id."""
    return f"pgm-{uuid.uuid4().hex[:16]}"


class WorkflowService:
    """Starts, follows and stops workflows on one Dagster instance."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        sources: Sequence[Source],
        launcher: Launcher,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.instance = instance
        self.sources = {s.name: s for s in sources}
        self.launcher = launcher
        self.metrics = metrics
        self._lock = threading.Lock()
        self._drivers: dict[str, threading.Thread] = {}
        self._closed = threading.Event()

    # ---- sources and plans

    def source(self, name: str) -> Source:
        """A configured source by name (422 naming the configured ones)."""
        if name not in self.sources:
            known = ", ".join(sorted(self.sources)) or "none"
            raise ApiError(
                422, f"source: {name!r} is not a configured source (configured: {known})"
            )
        return self.sources[name]

    def plan(self, source: Source) -> SourcePlan:
        return SourcePlan(source, PostgresCatalogTranslator().get_asset_spec)

    # ---- start

    def start(
        self,
        source_name: str,
        databases: Sequence[str] | None,
        overrides: Mapping[str, Any],
        workflow_id: str | None = None,
    ) -> dict[str, Any]:
        """Validate, then launch the workflow's first runs; {workflow_id, run_id, run_ids}."""
        source = self.source(source_name)
        try:
            effective = source.replace(**overrides) if overrides else source
            tags = overrides_tag(overrides)
        except ConfigError as exc:
            raise ApiError(422, f"metadata: {exc}") from None
        plan = self.plan(source)
        try:
            configured = list_databases(plan)
            selected = configured if effective is source else list_databases(self.plan(effective))
        except ConfigError as exc:  # a filter regex PostgreSQL refuses
            raise ApiError(422, f"metadata: {exc}") from None
        except PgMetadataError as exc:
            raise ApiError(503, str(exc)) from None
        targets = list(databases) if databases else selected
        unknown = [d for d in targets if d not in selected]
        if unknown:
            raise ApiError(
                422,
                f"databases: {', '.join(unknown)} not found on {source.describe()} or not "
                "selected by the filters",
            )
        outside = [d for d in targets if d not in configured]
        if outside:
            raise ApiError(
                422,
                f"databases: {', '.join(outside)} not selected by source {source.name!r}'s "
                "configured filters (widen them in its configuration)",
            )
        if not targets:
            raise ApiError(422, f"no database of {source.describe()} matches the filters")
        workflow_id = workflow_id or new_workflow_id()
        with self._lock:
            if self._runs(workflow_id):
                raise ApiError(409, f"workflow {workflow_id} already exists; omit workflow_id")
            config = WorkflowConfig(workflow_id, source.name, targets, dict(overrides))
            root = telemetry.tracer().start_span(
                "pg_metadata.workflow",
                attributes={
                    "pg_metadata.workflow_id": workflow_id,
                    "pg_metadata.source": source.name,
                },
            )
            base = {WORKFLOW_TAG: workflow_id, CONFIG_TAG: config.to_json(), **tags}
            try:
                if self._needs_discovery(plan, targets):
                    run_ids = [self._launch(plan.discover_job_name, base, "discover", root)]
                else:
                    run_ids = self._launch_extracts(plan, config, base, root)
            except BaseException:
                root.end()
                raise
            self._drive(workflow_id, root)
        return {"workflow_id": workflow_id, "run_id": run_ids[0], "run_ids": run_ids}

    def _needs_discovery(self, plan: SourcePlan, targets: Sequence[str]) -> bool:
        listed = listed_databases(self.instance, plan) or set()
        partitions = set(self.instance.get_dynamic_partitions(plan.partitions.name))
        return not set(targets) <= (listed & partitions)

    def _launch(self, job: str, tags: Mapping[str, str], step: str, parent: Any) -> str:
        with telemetry.attached(telemetry.context_with(parent)):
            traceparent = telemetry.traceparent()
        all_tags = {**tags, STEP_TAG: step, **({PARENT_TAG: traceparent} if traceparent else {})}
        run_id = self.launcher.submit(job, all_tags)
        if self.metrics is not None:
            source = json.loads(tags[CONFIG_TAG])["source"]
            self.metrics.runs_started.labels(source=source, job=job).inc()
        return run_id

    def _launch_extracts(
        self, plan: SourcePlan, config: WorkflowConfig, base: Mapping[str, str], root: Any
    ) -> list[str]:
        run_ids = []
        for db in config.databases:
            tags = {**base, PARTITION_TAG: db, **plan.database_tags(db)}
            run_ids.append(self._launch(plan.extract_job_name, tags, "extract", root))
        return run_ids

    # ---- following a workflow

    def _drive(self, workflow_id: str, root: Any) -> None:
        thread = threading.Thread(
            target=self._follow,
            args=(workflow_id, root),
            name=f"workflow-{workflow_id}",
            daemon=True,
        )
        self._drivers[workflow_id] = thread
        thread.start()

    def _follow(self, workflow_id: str, root: Any) -> None:
        """Launch the extract runs once discovery succeeded; end the span when all are done."""
        try:
            while not self._closed.wait(POLL_SECONDS):
                runs = self._runs(workflow_id)
                if not runs:
                    continue
                states = [_STATE[r.status] for r in runs]
                self._cancel_stopped(runs)
                if self._discovered(runs):
                    self._after_discovery(workflow_id, runs, root)
                    continue
                if all(s in TERMINAL for s in states):
                    status = self.status(workflow_id)
                    if status is not None and root is not None:
                        if status["status"] != "success":
                            root.set_status(telemetry.error_status(status.get("error") or "failed"))
                        root.set_attribute("pg_metadata.status", status["status"])
                    if status is not None:
                        self._record(status)
                    return
        except Exception:  # a driver must never take the API down; the status still reads
            log.exception("workflow %s: following its runs failed", workflow_id)
        finally:
            if root is not None:
                root.end()
            telemetry.flush()
            with self._lock:
                self._drivers.pop(workflow_id, None)

    def _discovered(self, runs: Sequence[dg.DagsterRun]) -> bool:
        """Discovery succeeded, and its extract runs are not launched (nor stopped, nor failed)."""
        discover = [r for r in runs if r.tags.get(STEP_TAG) == "discover"]
        extracts = [r for r in runs if r.tags.get(STEP_TAG) == "extract"]
        return (
            bool(discover)
            and discover[0].status == dg.DagsterRunStatus.SUCCESS
            and not extracts
            and STOP_TAG not in discover[0].tags
            and ERROR_TAG not in discover[0].tags
        )

    def _after_discovery(self, workflow_id: str, runs: Sequence[dg.DagsterRun], root: Any) -> None:
        discover = next(r for r in runs if r.tags.get(STEP_TAG) == "discover")
        config = WorkflowConfig.from_json(discover.tags[CONFIG_TAG])
        plan = self.plan(self.source(config.source))
        partitions = set(self.instance.get_dynamic_partitions(plan.partitions.name))
        missing = [d for d in config.databases if d not in partitions]
        if missing:
            message = (
                f"discovery did not register database(s) {', '.join(missing)}: they were "
                "dropped, or are no longer selected by the source's filters"
            )
            self.instance.add_run_tags(discover.run_id, {ERROR_TAG: message})
            return
        base = {k: v for k, v in discover.tags.items() if k in (WORKFLOW_TAG, CONFIG_TAG)}
        base.update({k: v for k, v in discover.tags.items() if k.startswith("pg_metadata/over")})
        try:
            self._launch_extracts(plan, config, base, root)
        except ApiError as exc:
            self.instance.add_run_tags(discover.run_id, {ERROR_TAG: str(exc)})

    def _record(self, status: Mapping[str, Any]) -> None:
        """Count a finished workflow's runs, entities and durations in /metrics."""
        if self.metrics is None:
            return
        m, source = self.metrics, status["source"]
        for run in status["runs"]:
            m.runs_finished.labels(source=source, status=run["status"]).inc()
            if run["step"] == "extract" and run.get("duration_seconds") is not None:
                m.extraction_seconds.labels(source=source).observe(run["duration_seconds"])
            for type_name, n in (run.get("entities") or {}).items():
                m.entities.labels(source=source, type=type_name).inc(n)

    def resume(self) -> int:
        """Follow (and continue) the workflows still in flight, e.g. after an API restart."""
        records = self.instance.get_run_records(
            filters=dg.RunsFilter(tags={STEP_TAG: "discover"}), limit=200
        )
        active = [s for s, state in _STATE.items() if state not in TERMINAL]
        records += self.instance.get_run_records(filters=dg.RunsFilter(statuses=active), limit=500)
        resumed = 0
        for record in records:
            workflow_id = record.dagster_run.tags.get(WORKFLOW_TAG)
            if not workflow_id or workflow_id in self._drivers:
                continue
            runs = self._runs(workflow_id)
            if self._discovered(runs) or any(_STATE[r.status] not in TERMINAL for r in runs):
                self._drive(workflow_id, None)
                resumed += 1
        return resumed

    def close(self) -> None:
        """Stop following workflows (their runs go on)."""
        self._closed.set()

    # ---- reading a workflow

    def _runs(self, workflow_id: str) -> list[dg.DagsterRun]:
        runs = self.instance.get_runs(filters=dg.RunsFilter(tags={WORKFLOW_TAG: workflow_id}))
        return sorted(
            runs, key=lambda r: (r.tags.get(STEP_TAG) != "discover", r.tags.get(PARTITION_TAG, ""))
        )

    def config(self, workflow_id: str) -> WorkflowConfig | None:
        """The stored configuration of a workflow (the latest one written)."""
        runs = self._runs(workflow_id)
        return WorkflowConfig.from_json(runs[0].tags[CONFIG_TAG]) if runs else None

    def update_config(self, workflow_id: str, changes: Mapping[str, Any]) -> WorkflowConfig | None:
        """Change what a later run of the workflow extracts; validated like /start."""
        config = self.config(workflow_id)
        if config is None:
            return None
        source = self.source(config.source)
        if "databases" in changes:
            config.databases = list(changes["databases"])
        if "overrides" in changes:
            config.overrides = dict(changes["overrides"])
        try:
            effective = source.replace(**config.overrides)
            overrides_tag(config.overrides)
            check_source_patterns(effective)
        except ConfigError as exc:
            raise ApiError(422, f"metadata: {exc}") from None
        for run in self._runs(workflow_id):
            self.instance.add_run_tags(run.run_id, {CONFIG_TAG: config.to_json()})
        return config

    def status(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any] | None:
        """State, timings, per-database counts and manifests, the one-line failure."""
        runs = self._runs(workflow_id)
        if not runs:
            return None
        if run_id is not None:
            runs = [r for r in runs if r.run_id == run_id]
            if not runs:
                return None
        config = WorkflowConfig.from_json(runs[0].tags[CONFIG_TAG])
        details = [self._run_status(r) for r in runs]
        states = [d["status"] for d in details]
        error = next((d["error"] for d in details if d.get("error")), None)
        stopped = any(STOP_TAG in r.tags for r in runs)
        pending = run_id is None and self._discovered(runs) and not stopped
        if any(s in ("running", "canceling") for s in states) or pending:
            state = "running"
        elif any(s == "queued" for s in states):
            state = "queued"
        elif error or "failure" in states:
            state = "failure"
        elif "canceled" in states or stopped:
            state = "canceled"
        else:
            state = "success"
        starts = [d["started_at"] for d in details if d["started_at"]]
        ends = [d["ended_at"] for d in details if d["ended_at"]]
        ended = max(ends) if ends and state in TERMINAL else None
        databases = {
            d["database"]: {k: d[k] for k in ("status", "entities", "manifest", "error") if k in d}
            for d in details
            if d["step"] == "extract"
        }
        return {
            "workflow_id": workflow_id,
            "source": config.source,
            "status": state,
            "created_at": config.created_at,
            "started_at": min(starts) if starts else None,
            "ended_at": ended,
            "execution_duration_seconds": round(ended - min(starts), 3)
            if ended and starts
            else None,
            "databases": databases,
            "runs": details,
            **({"error": error} if error else {}),
        }

    def _run_status(self, run: dg.DagsterRun) -> dict[str, Any]:
        record = self.instance.get_run_record_by_id(run.run_id)
        state = _STATE[run.status]
        detail: dict[str, Any] = {
            "run_id": run.run_id,
            "job": run.job_name,
            "step": run.tags.get(STEP_TAG),
            "database": run.tags.get(PARTITION_TAG),
            "status": state,
            "started_at": record.start_time if record else None,
            "ended_at": record.end_time if record and state in TERMINAL else None,
        }
        if detail["started_at"] and detail["ended_at"]:
            detail["duration_seconds"] = round(detail["ended_at"] - detail["started_at"], 3)
        if ERROR_TAG in run.tags:
            detail["error"] = run.tags[ERROR_TAG]
        if state in ("success", "failure"):
            events = run_events(self.instance, run.run_id)
            if state == "failure":
                detail["error"] = failure_line(events)
            elif run.tags.get(STEP_TAG) == "extract":
                manifest = manifest_of(events)
                if manifest is not None:
                    detail["entities"] = manifest["entities"]
                    detail["manifest"] = manifest["latest"]
        return detail

    # ---- stopping

    def stop(self, workflow_id: str) -> dict[str, Any] | None:
        """Cancel every run of the workflow that has not finished; no further runs start."""
        runs = self._runs(workflow_id)
        if not runs:
            return None
        for run in runs:
            self.instance.add_run_tags(run.run_id, {STOP_TAG: "true"})
        active = [r.run_id for r in runs if _STATE[r.status] not in TERMINAL]
        self._cancel_stopped(self._runs(workflow_id))
        with self._lock:
            if active and workflow_id not in self._drivers:
                self._drive(workflow_id, None)  # cancels the runs still starting
        return {"workflow_id": workflow_id, "canceled": active}

    def _cancel_stopped(self, runs: Sequence[dg.DagsterRun]) -> None:
        """Cancel the stopped workflow's runs that Dagster can cancel now; a run still
        STARTING cannot be, so the workflow's driver cancels it once it has started."""
        for run in runs:
            if STOP_TAG in run.tags and run.status in CANCELABLE:
                try:
                    self.launcher.terminate([run.run_id])
                except ApiError as exc:
                    if "TerminateRunFailure" not in str(exc):  # not: it moved on meanwhile
                        raise

    def instance_check(self) -> str:
        """One line about the instance (raises if it does not answer)."""
        count = self.instance.get_runs_count()
        return f"Dagster instance answers ({count} run(s))"
