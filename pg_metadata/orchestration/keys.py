"""Asset keys shared by the assets, checks, manifest and sensors."""

import dagster as dg

from pg_metadata.atlan import entities as E
from pg_metadata.catalog.datasets import Dataset


def raw_key(dataset: Dataset) -> dg.AssetKey:
    """Asset key of a raw dataset."""
    return dg.AssetKey(["raw", dataset.name])


ENTITY_KEYS = {
    E.DATABASE: dg.AssetKey(["atlan", "database"]),
    E.SCHEMA: dg.AssetKey(["atlan", "schema"]),
    E.TABLE: dg.AssetKey(["atlan", "table"]),
    E.TABLE_PARTITION: dg.AssetKey(["atlan", "table_partition"]),
    E.VIEW: dg.AssetKey(["atlan", "view"]),
    E.MATERIALISED_VIEW: dg.AssetKey(["atlan", "materialised_view"]),
    E.COLUMN: dg.AssetKey(["atlan", "column"]),
}
