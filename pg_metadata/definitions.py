"""The code location: assets, jobs and resources, configured from the environment."""

from __future__ import annotations

import os

import dagster as dg

from pg_metadata.assets import ENTITY_KEYS, databases, entity_assets, extract_catalog
from pg_metadata.automation import catalog_changes, database_discovery, nightly_refresh
from pg_metadata.checks import entity_asset_checks
from pg_metadata.io_manager import CatalogIOManager
from pg_metadata.manifest import manifest
from pg_metadata.resources import CatalogSettings, OutputTarget, PostgresResource
from pg_metadata.storage import DEFAULT_TARGET

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

check_entities_job = dg.define_asset_job(
    "check_entities",
    selection=dg.AssetSelection.checks_for_assets(*ENTITY_KEYS.values()),
    description="Re-run the integrity checks on a database's latest entity output.",
)


def build_definitions(
    postgres: PostgresResource | None = None,
    catalog: CatalogSettings | None = None,
    output: OutputTarget | None = None,
) -> dg.Definitions:
    """Definitions with the given resources, or resources read from the environment."""
    output = output or OutputTarget(target=os.environ.get("PG_METADATA_OUTPUT") or DEFAULT_TARGET)
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=entity_asset_checks,
        sensors=[database_discovery, catalog_changes],
        schedules=[nightly_refresh],
        jobs=[discover_databases_job, extract_database_job, check_entities_job],
        resources={
            "postgres": postgres or PostgresResource(),
            "catalog": catalog or CatalogSettings.from_env(),
            "output": output,
            "io_manager": CatalogIOManager(output=output),
        },
    )


defs = build_definitions()
