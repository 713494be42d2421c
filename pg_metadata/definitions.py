"""The code location: assets, jobs and resources, configured from the environment."""

from __future__ import annotations

import logging
import os

import dagster as dg

from pg_metadata.orchestration.assets import databases, entity_assets, extract_catalog
from pg_metadata.orchestration.automation import (
    catalog_changes,
    database_discovery,
    nightly_refresh,
)
from pg_metadata.orchestration.io_manager import CatalogIOManager
from pg_metadata.orchestration.manifest import manifest
from pg_metadata.orchestration.object_assets import object_specs
from pg_metadata.orchestration.resources import CatalogSettings, OutputTarget, PostgresResource
from pg_metadata.output.storage import DEFAULT_TARGET

ALL_ASSETS = [databases, extract_catalog, *entity_assets, manifest]

discover_databases_job = dg.define_asset_job(
    "discover_databases",
    selection=dg.AssetSelection.assets(databases),
    description="List the server's databases and register one partition per database.",
)
extract_database_job = dg.define_asset_job(
    "extract_database",
    selection=dg.AssetSelection.assets(extract_catalog, *entity_assets, manifest),
    description="Extract one database (partition): raw catalog, Atlan entities, manifest.",
)


def browsable_objects(output: OutputTarget, browse: bool | None) -> list[dg.AssetSpec]:
    """External assets for the Postgres objects in the latest output, when enabled."""
    if browse is None:
        browse = os.environ.get("PG_METADATA_BROWSE_OBJECTS", "").lower() in ("1", "true", "on")
    if not browse:
        return []
    limit = int(os.environ.get("PG_METADATA_BROWSE_MAX", "5000"))
    try:
        return object_specs(output.store(), limit)
    except Exception as exc:  # the code location must load whatever is in the output
        logging.getLogger(__name__).warning("not showing Postgres objects: %s", exc)
        return []


def build_definitions(
    postgres: PostgresResource | None = None,
    catalog: CatalogSettings | None = None,
    output: OutputTarget | None = None,
    browse: bool | None = None,
) -> dg.Definitions:
    """Definitions with the given resources, or resources read from the environment."""
    output = output or OutputTarget(target=os.environ.get("PG_METADATA_OUTPUT") or DEFAULT_TARGET)
    return dg.Definitions(
        assets=[*ALL_ASSETS, *browsable_objects(output, browse)],
        sensors=[database_discovery, catalog_changes],
        schedules=[nightly_refresh],
        jobs=[discover_databases_job, extract_database_job],
        resources={
            "postgres": postgres or PostgresResource(),
            "catalog": catalog or CatalogSettings.from_env(),
            "output": output,
            "io_manager": CatalogIOManager(output=output),
        },
    )


defs = build_definitions()
