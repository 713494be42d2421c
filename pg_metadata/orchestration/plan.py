"""Everything the Dagster layer derives from one source: asset specs, keys, names, a connector.

Each asset has a stable *path* (``raw/tables``, ``transformed/column``, ``output/manifest``) that
names its files inside a run prefix, as Atlan's SDK v3 lays them out (``raw/<dataset>/``,
``transformed/<entity>/``), and its entry in the manifest, whatever key the translator gives it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import dagster as dg

from pg_metadata.atlan import entities as E
from pg_metadata.catalog.connection import Connector
from pg_metadata.catalog.datasets import DATABASES, PER_DATABASE, Dataset
from pg_metadata.catalog.sources import Source

PATH_METADATA = "pg_metadata/path"  # definition metadata: the asset's stable output path
SOURCE_TAG = "pg_metadata/source"  # run tag on every job of a source (queue limits per source)
DATABASE_TAG = "pg_metadata/database"  # <source>/<database>: one run at a time each
PARTITION_TAG = "dagster/partition"  # Dagster's: the partition (database) a run is for
RAW_PATHS = {d.name: f"raw/{d.name}" for d in (DATABASES, *PER_DATABASE)}
ENTITY_PATHS = {
    E.DATABASE: "transformed/database",
    E.SCHEMA: "transformed/schema",
    E.TABLE: "transformed/table",
    E.TABLE_PARTITION: "transformed/table_partition",
    E.VIEW: "transformed/view",
    E.MATERIALISED_VIEW: "transformed/materialised_view",
    E.COLUMN: "transformed/column",
    E.PROCEDURE: "transformed/procedure",
    E.PROCESS: "transformed/process",
    E.COLUMN_PROCESS: "transformed/column_process",
}
MANIFEST_PATH = "output/manifest"
ALL_PATHS = (*RAW_PATHS.values(), *ENTITY_PATHS.values(), MANIFEST_PATH)


@dataclass(frozen=True)
class CatalogAssetData:
    """One asset of a source, as handed to the translator and to a Component's `translation`."""

    source: Source
    path: str  # e.g. "raw/tables", "transformed/column", "output/manifest"

    @property
    def layer(self) -> str:
        """`raw`, `transformed` or `output`."""
        return self.path.split("/")[0]

    @property
    def name(self) -> str:
        """The dataset (`tables`), entity folder (`column`) or `manifest`."""
        return self.path.split("/")[1]

    @property
    def type_name(self) -> str | None:
        """The Atlan typeName of an entity asset."""
        return next((t for t, p in ENTITY_PATHS.items() if p == self.path), None)


SpecFn = Callable[[CatalogAssetData], dg.AssetSpec]


@dataclass
class SourcePlan:
    """The specs and names of one source's assets, jobs, partitions and pool."""

    source: Source
    get_spec: SpecFn = field(repr=False)
    target: str = ""

    @cached_property
    def specs(self) -> dict[str, dg.AssetSpec]:
        """Translated spec of every asset, by path."""
        specs = {p: self.get_spec(CatalogAssetData(self.source, p)) for p in ALL_PATHS}
        keys = [s.key for s in specs.values()]
        if len(set(keys)) != len(keys):
            raise dg.DagsterInvalidDefinitionError(
                f"source {self.source.name!r}: the translation gives two assets the same key"
            )
        return specs

    @cached_property
    def connector(self) -> Connector:
        """Opens this source's connections (one token signer per process for IAM)."""
        return Connector(self.source)

    @property
    def name(self) -> str:
        """The source name."""
        return self.source.name

    def key(self, path: str) -> dg.AssetKey:
        """Asset key of the asset at a path."""
        return self.specs[path].key

    def raw_key(self, dataset: Dataset) -> dg.AssetKey:
        """Asset key of a raw dataset."""
        return self.key(RAW_PATHS[dataset.name])

    def entity_key(self, type_name: str) -> dg.AssetKey:
        """Asset key of the entity asset of an Atlan typeName."""
        return self.key(ENTITY_PATHS[type_name])

    @property
    def manifest_key(self) -> dg.AssetKey:
        """Asset key of the manifest."""
        return self.key(MANIFEST_PATH)

    @cached_property
    def partitions(self) -> dg.DynamicPartitionsDefinition:
        """One dynamic partition per database of this source."""
        return dg.DynamicPartitionsDefinition(name=f"{self.name}_databases")

    @property
    def pool(self) -> str:
        """The pool every step that connects to this source runs in."""
        return f"pg_metadata/{self.name}"

    @property
    def io_manager_key(self) -> str:
        """Resource key of this source's IO manager."""
        return f"pg_metadata_io_{self.name}"

    @property
    def discover_job_name(self) -> str:
        return f"{self.name}__discover_databases"

    @property
    def extract_job_name(self) -> str:
        return f"{self.name}__extract_database"

    @property
    def job_tags(self) -> dict[str, str]:
        """Tags of every run of this source's jobs.

        Failures inside an asset are final (configuration, authentication) or already retried
        in the step (transient errors), so instance run retries only re-run crashed runs.
        """
        return {SOURCE_TAG: self.name, "dagster/retry_on_asset_or_op_failure": "false"}

    def database_tags(self, database: str) -> dict[str, str]:
        """Tags of one database's extraction run (besides its partition): `pg_metadata/database`
        (`<source>/<database>`), which the instance's tag concurrency limit of 1 per value
        (dagster.yaml) uses to queue a second run of the same database behind the first."""
        return {DATABASE_TAG: f"{self.name}/{database}"}
