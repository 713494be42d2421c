"""The translator: the base AssetSpec of every asset of a source.

Keys are ``<source>/raw/<dataset>``, ``<source>/atlan/<type>`` (files under
``transformed/<type>/``) and ``<source>/output/manifest``;
every asset of a source is in the group named after it. Subclass and override
`get_asset_spec`, or give a Component a `translation`, to change keys, groups, owners, tags,
descriptions or automation; dependencies, partitions and pools are not the translator's.
"""

from __future__ import annotations

import dagster as dg

from pg_metadata.atlan import entities as E
from pg_metadata.catalog.datasets import BY_NAME, Dataset
from pg_metadata.orchestration.plan import CatalogAssetData

ENTITY_DESCRIPTION = "Atlan {} entities of one database (JSON Lines)."
MANIFEST_DESCRIPTION = (
    "Lists every file of this database's latest complete output with its row count; written "
    "last, then copied to latest/<database>.json."
)


def column_schema(dataset: Dataset) -> dg.TableSchema:
    """A raw dataset's columns as Dagster table schema metadata."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=desc)
            for name, dtype, desc in dataset.fields
        ]
    )


def entity_schema(type_name: str) -> dg.TableSchema:
    """The entity attributes computed from raw columns, as Dagster table schema metadata."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f"attributes.{attr}", "json", description=f"from {', '.join(cols)}")
            for attr, cols in E.ATTRIBUTE_SOURCES[type_name].items()
        ]
    )


class PostgresCatalogTranslator:
    """Builds the base AssetSpec of each asset of a source."""

    def get_asset_spec(self, data: CatalogAssetData) -> dg.AssetSpec:
        """The spec of one asset: key, group, kinds, description and schema metadata."""
        source = data.source.name
        key = dg.AssetKey(
            [source, "atlan" if data.layer == "transformed" else data.layer, data.name]
        )
        if data.layer == "raw":
            dataset = BY_NAME[data.name]
            return dg.AssetSpec(
                key,
                group_name=source,
                kinds={"postgres", "parquet"},
                description=dataset.description,
                metadata={"dagster/column_schema": column_schema(dataset)},
            )
        if data.layer == "transformed":
            type_name = data.type_name or ""
            return dg.AssetSpec(
                key,
                group_name=source,
                kinds={"atlan", "json"},
                description=ENTITY_DESCRIPTION.format(type_name),
                metadata={"dagster/column_schema": entity_schema(type_name)},
            )
        return dg.AssetSpec(
            key, group_name=source, kinds={"json"}, description=MANIFEST_DESCRIPTION
        )
