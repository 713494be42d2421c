"""The IO manager: raw datasets as Parquet, entities as JSON Lines, under a run-scoped prefix.

Layout under ``<target>/<source>/``: ``runs/<run_id>/<path>[/<database>].<ext>``, where the path is
the asset's stable path (``raw/tables``, ``atlan/column``), whatever its key. Each output is
staged locally and published whole. Its URI and row count are recorded in the materialization,
and loading an input looks up the latest materialization of that asset (and partition), so
downstream assets load upstream files written by the same run or by any earlier run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import pyarrow as pa

from pg_metadata.errors import OutputError
from pg_metadata.orchestration.history import latest_materialization
from pg_metadata.orchestration.plan import PATH_METADATA
from pg_metadata.orchestration.resources import OutputTarget
from pg_metadata.output.formats import (
    Entities,
    JsonLinesFile,
    ParquetFile,
    TableSource,
    write_json_lines,
    write_parquet,
)
from pg_metadata.output.storage import encode_segment


def output_key(run_id: str, path: str, partition: str | None, ext: str) -> str:
    """Object key of one output file, e.g. runs/<run>/raw/tables/shop.parquet."""
    stem = "/".join(encode_segment(p) for p in path.split("/"))
    if partition is not None:
        stem = f"{stem}/{encode_segment(partition)}"
    return f"runs/{run_id}/{stem}{ext}"


PREVIEW_ROWS = 5


def _keep_first(
    items: Iterable[dict[str, Any]], kept: list[dict[str, Any]], n: int
) -> Iterator[dict[str, Any]]:
    for item in items:
        if len(kept) < n:
            kept.append(item)
        yield item


def preview_markdown(entities: list[dict[str, Any]]) -> str:
    """A small Markdown table of sample entities for the Dagster UI."""
    if not entities:
        return "_no entities_"
    lines = ["| typeName | name | qualifiedName |", "| --- | --- | --- |"]
    for e in entities:
        a = e.get("attributes", {})
        cells = [e.get("typeName", ""), a.get("name", ""), a.get("qualifiedName", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


class CatalogIOManager(dg.ConfigurableIOManager):
    """Writes a source's raw Arrow data as Parquet and entity streams as JSON Lines."""

    output: OutputTarget

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        store = self.output.store()
        partition = context.asset_partition_key if context.has_asset_partitions else None
        preview: list[dict[str, Any]] = []
        if isinstance(obj, Entities):
            items = _keep_first(obj.items, preview, PREVIEW_ROWS)
            ext, writer = ".json", lambda p: write_json_lines(items, p)
        else:
            source = TableSource(obj) if isinstance(obj, pa.Table) else obj
            ext, writer = ".parquet", lambda p: write_parquet(source, p)
        path = str(context.definition_metadata[PATH_METADATA])
        key = output_key(context.run_id, path, partition, ext)
        staging = store.staging_dir() / f"{context.run_id}-{path.replace('/', '.')}.part"
        try:
            rows = writer(staging)
            size = staging.stat().st_size
            uri = store.publish(staging, key)
        finally:
            staging.unlink(missing_ok=True)
        metadata: dict[str, Any] = {
            "uri": dg.MetadataValue.path(uri),
            "dagster/row_count": rows,
            "size_bytes": size,
        }
        if isinstance(obj, Entities):
            metadata["preview"] = dg.MetadataValue.md(preview_markdown(preview))
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> Any:
        uri = self._upstream_uri(context)
        local = self.output.store().fetch(uri)
        if uri.endswith(".parquet"):
            return ParquetFile(local)
        return JsonLinesFile(local)

    def _upstream_uri(self, context: dg.InputContext) -> str:
        key = context.asset_key
        partition = context.asset_partition_key if context.has_asset_partitions else None
        latest = latest_materialization(context.instance, key, partition)
        if latest is None or "uri" not in latest[0].metadata:
            where = key.to_user_string()
            if partition is not None:
                where += f" for database {partition!r}"
            raise OutputError(f"no output of {where} found; materialize it first")
        return str(latest[0].metadata["uri"].value)
