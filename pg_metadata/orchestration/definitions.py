"""Dagster definitions of one source or a fleet: assets, checks, jobs, automation, resources."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import dagster as dg

from pg_metadata.catalog.sources import Source, check_fleet
from pg_metadata.errors import ConfigError
from pg_metadata.orchestration.assets import catalog_asset, databases_asset
from pg_metadata.orchestration.automation import (
    change_sensor,
    discovery_sensor,
    refresh_schedule,
)
from pg_metadata.orchestration.entity_assets import entity_assets
from pg_metadata.orchestration.io_manager import CatalogIOManager
from pg_metadata.orchestration.manifest import manifest_asset
from pg_metadata.orchestration.object_assets import object_specs
from pg_metadata.orchestration.plan import SourcePlan, SpecFn
from pg_metadata.orchestration.resources import OutputTarget
from pg_metadata.orchestration.tracing import traced
from pg_metadata.orchestration.translator import PostgresCatalogTranslator
from pg_metadata.output.storage import DEFAULT_TARGET, parse_target

EXECUTORS = ("in_process", "multiprocess", "celery", "none")


def default_target() -> str:
    """PG_METADATA_OUTPUT, else ./pg_metadata_output."""
    return os.environ.get("PG_METADATA_OUTPUT") or DEFAULT_TARGET


def browse_enabled(browse: bool | None) -> bool:
    """Whether to show the Postgres objects as external assets (PG_METADATA_BROWSE_OBJECTS)."""
    if browse is not None:
        return browse
    return os.environ.get("PG_METADATA_BROWSE_OBJECTS", "").lower() in ("1", "true", "on")


def browsable_objects(plan: SourcePlan, output: OutputTarget) -> list[dg.AssetSpec]:
    """External assets for the Postgres objects in the source's latest output."""
    limit = int(os.environ.get("PG_METADATA_BROWSE_MAX", "5000"))
    try:
        return object_specs(output.store(), plan.name, limit)
    except Exception as exc:  # the code location must load whatever is in the output
        logging.getLogger(__name__).warning(
            "not showing Postgres objects of source %r: %s", plan.name, exc
        )
        return []


def source_definitions(
    source: Source,
    target: str | None = None,
    get_spec: SpecFn | None = None,
    browse: bool | None = None,
) -> dg.Definitions:
    """Everything one source needs: its assets, checks, jobs, sensors, schedule, IO manager."""
    target = target or default_target()
    parse_target(target)
    plan = SourcePlan(source, get_spec or PostgresCatalogTranslator().get_asset_spec, target)
    output = OutputTarget(target=target, source=source.name)
    databases = databases_asset(plan)
    catalog = catalog_asset(plan)
    entities = entity_assets(plan)
    manifest = manifest_asset(plan)
    discover_job = dg.define_asset_job(
        plan.discover_job_name,
        selection=dg.AssetSelection.assets(databases),
        description=f"List the databases of source {source.name!r} ({source.describe()}) and "
        "register one partition per database.",
        tags=plan.job_tags,
    )
    extract_job = dg.define_asset_job(
        plan.extract_job_name,
        selection=dg.AssetSelection.assets(catalog, *entities, manifest),
        description=f"Extract one database (partition) of source {source.name!r}: raw catalog, "
        "Atlan entities, manifest.",
        tags=plan.job_tags,
    )
    objects = browsable_objects(plan, output) if browse_enabled(browse) else []
    return dg.Definitions(
        assets=[databases, catalog, *entities, manifest, *objects],
        jobs=[discover_job, extract_job],
        sensors=[discovery_sensor(plan), change_sensor(plan)],
        schedules=[refresh_schedule(plan)],
        resources={plan.io_manager_key: CatalogIOManager(output=output)},
        executor=executor(),
    )


def build_definitions(
    sources: Sequence[Source],
    target: str | None = None,
    browse: bool | None = None,
) -> dg.Definitions:
    """Definitions of a fleet of sources sharing one output target."""
    check_fleet(sources, "sources")
    return dg.Definitions.merge(
        *(source_definitions(s, target=target, browse=browse) for s in sources)
    )


_EXECUTOR: dict[str, dg.ExecutorDefinition | None] = {}


def executor() -> dg.ExecutorDefinition | None:
    """The executor of every run (PG_METADATA_EXECUTOR), one object per process.

    `in_process` (default) runs a small database's steps in the run's own process, as fast as
    the CLI; `multiprocess` gives every step its own process; `celery` sends steps to
    dagster-celery workers (broker CELERY_BROKER_URL); `none` leaves the choice to your own
    Definitions (e.g. dagster-k8s's k8s_job_executor). Each runs inside a span per run
    (orchestration/tracing.py) when OpenTelemetry is configured.
    """
    name = os.environ.get("PG_METADATA_EXECUTOR") or "in_process"
    if name not in EXECUTORS:
        raise ConfigError(f"PG_METADATA_EXECUTOR {name!r} is not one of {', '.join(EXECUTORS)}")
    if name not in _EXECUTOR:
        made = _make_executor(name)
        _EXECUTOR[name] = traced(made) if made is not None else None
    return _EXECUTOR[name]


def _make_executor(name: str) -> dg.ExecutorDefinition | None:
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "none":
        return None
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ConfigError(
            "PG_METADATA_EXECUTOR=celery needs dagster-celery: pip install -e '.[celery]'"
        ) from None
    # env references, so a broker password never lands in a job snapshot or run config
    backend = "CELERY_RESULT_BACKEND" if os.environ.get("CELERY_RESULT_BACKEND") else None
    return celery_executor.configured(
        {"broker": {"env": "CELERY_BROKER_URL"}, "backend": {"env": backend or "CELERY_BROKER_URL"}}
    )
