"""Traces of Dagster runs: a span per run, with every step's spans beneath it.

The run span is opened by the executor, in the run worker, so it covers every launched run
whatever launched it (the UI, a sensor, the REST API). Its W3C traceparent is written to the run
as a tag, so steps executed in other processes (multiprocess, Celery, Kubernetes) continue the
same trace. A run launched with a `pg_metadata/traceparent` tag (the REST API sets one) becomes
a child of that span.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from pg_metadata import telemetry
from pg_metadata.orchestration.plan import PARTITION_TAG, SOURCE_TAG

PARENT_TAG = "pg_metadata/traceparent"  # set by whoever launches a run into an existing trace
RUN_TRACE_TAG = "pg_metadata/run_traceparent"  # the run span, for steps in other processes


def run_attributes(run_id: str, job_name: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """Span attributes of one Dagster run."""
    return {
        "dagster.run_id": run_id,
        "dagster.job": job_name,
        "pg_metadata.source": tags.get(SOURCE_TAG),
        "db.namespace": tags.get(PARTITION_TAG),
    }


@contextlib.contextmanager
def run_span(run_id: str, job_name: str, tags: Mapping[str, str]) -> Iterator[Any]:
    """The span of one run; a child of the launch's traceparent tag, else of the current span."""
    parent = telemetry.context_of(tags.get(PARENT_TAG))
    with telemetry.phase("pg_metadata.run", parent, **run_attributes(run_id, job_name, tags)) as s:
        yield s


class TracedExecutor(dg.Executor):
    """Runs another executor inside the run's span, then flushes what the run recorded."""

    def __init__(self, inner: dg.Executor) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        # executors read their own settings back from the plan context's executor
        # (dagster-celery: `app_args()`, broker, queues), which is this wrapper
        return getattr(self.inner, name)

    @property
    def retries(self) -> Any:
        return self.inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self.inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        run = plan_context.dagster_run
        if not telemetry.setup():
            yield from self.inner.execute(plan_context, execution_plan)
            return
        failed = False
        try:
            with run_span(run.run_id, run.job_name, run.tags) as span:
                value = telemetry.traceparent()
                if value:
                    plan_context.instance.add_run_tags(run.run_id, {RUN_TRACE_TAG: value})
                for event in self.inner.execute(plan_context, execution_plan):
                    failed = failed or event.is_step_failure
                    yield event
                if failed:
                    span.set_status(telemetry.error_status("a step failed"))
                telemetry.log(
                    logging.ERROR if failed else logging.INFO,
                    f"run {run.run_id} of {run.job_name} {'failed' if failed else 'finished'}",
                    **{"dagster.run_id": run.run_id},
                )
        finally:
            telemetry.flush()


def traced(defn: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """The same executor, with a span per run."""
    create = defn.executor_creation_fn
    assert create is not None

    return dg.ExecutorDefinition(
        name=defn.name,
        config_schema=defn.config_schema,
        requirements=defn.get_requirements,
        executor_creation_fn=lambda init_context: TracedExecutor(create(init_context)),
        description=defn.description,
    )


@contextlib.contextmanager
def step_trace(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Continue the run's trace in a step running outside the run worker (then flush)."""
    if telemetry.has_current_span() or not telemetry.setup():
        yield
        return
    parent = telemetry.context_of(context.run.tags.get(RUN_TRACE_TAG))
    try:
        with telemetry.attached(parent):
            yield
    finally:
        telemetry.flush()
