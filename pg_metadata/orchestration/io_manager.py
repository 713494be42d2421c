"""The IO manager: raw datasets as Parquet, entities as JSON Lines, under a run-scoped prefix.

Layout under ``<target>/<source>/``: ``runs/<run_id>/<path>[/<database>].<ext>``, where the path is
the asset's stable path (``raw/tables``, ``transformed/column``), whatever its key. Each output is
staged locally and published whole. Its URI and row count are recorded in the materialization,
and loading an input looks up the latest materialization of that asset (and partition), so
downstream assets load upstream files written by the same run or by any earlier run.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import pyarrow as pa

from pg_metadata import telemetry
from pg_metadata.errors import OutputError
from pg_metadata.orchestration.history import materialization_for_run
from pg_metadata.orchestration.plan import PATH_METADATA
from pg_metadata.orchestration.resources import OutputTarget
from pg_metadata.output.formats import (
    Entities,
    JsonLinesFile,
    NamesIndex,
    ParquetFile,
    TableSource,
    file_sha256,
    write_encoded_json_lines,
    write_json_lines,
    write_parquet,
)
from pg_metadata.output.parallel import EncodedChunk, EncodedEntities
from pg_metadata.output.retention import discard_run
from pg_metadata.output.storage import encode_segment


def names_key(path: str) -> str:
    """Where an entity file's names index goes: transformed/column -> index/column."""
    return "index/" + path.split("/", 1)[1]


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


def _encoded(
    chunks: Iterable[EncodedChunk], names: NamesIndex, preview: list[dict[str, Any]]
) -> Iterator[tuple[bytes, int]]:
    for chunk in chunks:
        names.add(chunk.names)
        preview.extend(chunk.first[: PREVIEW_ROWS - len(preview)])
        yield chunk.data, len(chunk.names)


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
        digest = hashlib.sha256()
        path = str(context.definition_metadata[PATH_METADATA])
        staging = store.staging_dir() / f"{context.run_id}-{path.replace('/', '.')}.part"
        names: NamesIndex | None = None
        if isinstance(obj, Entities):
            names = NamesIndex(staging.with_suffix(".names"))
            items = names.watch(_keep_first(obj.items, preview, PREVIEW_ROWS))
            ext, writer = ".json", functools.partial(write_json_lines, items, digest=digest)
        elif isinstance(obj, EncodedEntities):
            names = NamesIndex(staging.with_suffix(".names"))
            chunks = _encoded(obj.chunks, names, preview)
            writer = functools.partial(write_encoded_json_lines, chunks, digest=digest)
            ext = ".json"
        else:
            source = TableSource(obj) if isinstance(obj, pa.Table) else obj
            ext, writer = ".parquet", lambda p, progress: write_parquet(source, p)
            digest = None
        key = output_key(context.run_id, path, partition, ext)
        names_uri = None
        entities = isinstance(obj, (Entities, EncodedEntities))
        type_name = obj.type_name if entities else None
        attributes = {
            "pg_metadata.path": path,
            "pg_metadata.entity_type": type_name,
            "db.namespace": partition,
        }
        # entities are built as they are written: this span is the transform and the write
        writing = _writing(store, path, context.run_id, partition)
        with telemetry.phase("pg_metadata.write", **attributes) as span, writing:
            # to S3 the file goes up while it is written; locally it is renamed at the end.
            # The publication owns the staging file: finish consumes it, abort removes it.
            publication = store.begin_publish(staging, key)
            try:
                rows = writer(staging, progress=publication.grown)
                size = staging.stat().st_size
                sha256 = digest.hexdigest() if digest is not None else file_sha256(staging)
                with telemetry.phase("pg_metadata.upload", **{"pg_metadata.path": path}):
                    if names is not None:
                        names.close()
                        index_key = output_key(context.run_id, names_key(path), partition, ".jsonl")
                        names_uri = store.publish(names.path, index_key)
                    uri = publication.finish()
            except BaseException:
                publication.abort()
                raise
            finally:
                if names is not None:
                    names.close()
                    names.path.unlink(missing_ok=True)
            span.set_attributes({"pg_metadata.rows": rows, "pg_metadata.bytes": size, "uri": uri})
        telemetry.record_output(self.output.source, path, type_name, rows, size)
        metadata: dict[str, Any] = {
            "uri": dg.MetadataValue.path(uri),
            "dagster/row_count": rows,
            "size_bytes": size,
            "sha256": sha256,
        }
        if entities:
            metadata["preview"] = dg.MetadataValue.md(preview_markdown(preview))
            metadata["names_uri"] = dg.MetadataValue.path(names_uri)
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> Any:
        store = self.output.store()
        metadata = self._upstream_metadata(context)
        uri = str(metadata["uri"].value)
        if uri.endswith(".parquet"):
            return ParquetFile(store.fetch(uri))
        # entity inputs are read for their names: the small index, the file itself on demand
        names = metadata.get("names_uri")
        names_path = store.fetch(str(names.value)) if names is not None else None
        return JsonLinesFile(None, names_path, fetch=lambda: store.fetch(uri))

    def _upstream_metadata(self, context: dg.InputContext) -> dict[str, Any]:
        key = context.asset_key
        partition = context.asset_partition_key if context.has_asset_partitions else None
        # this run's own file when it wrote one: another run of the same database (overlapping,
        # or started later) must never hand this run its raw rows
        latest = materialization_for_run(context.instance, key, partition, _run_id(context))
        if latest is None or "uri" not in latest[0].metadata:
            where = key.to_user_string()
            if partition is not None:
                where += f" for database {partition!r}"
            raise OutputError(f"no output of {where} found; materialize it first")
        return dict(latest[0].metadata)


def _run_id(context: dg.InputContext) -> str | None:
    try:
        return context.step_context.run_id
    except Exception:  # an input context built outside a run (direct invocation)
        return None


@contextlib.contextmanager
def _writing(store: Any, path: str, run_id: str, database: str | None) -> Iterator[None]:
    """A file-system failure while writing or publishing, as one line naming the target. On a
    full disk the run's files of this database go too: the run cannot finish, and the next
    one needs the space."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        freed = ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            with contextlib.suppress(OSError, OutputError):
                count = discard_run(store, run_id, database)
                freed = f"; removed this run's {count} file(s) written so far"
        raise OutputError(
            f"cannot write {path} to {store.uri('')}: {reason}{where}{freed} (check free space "
            "and permissions there, or set PG_METADATA_OUTPUT / --output elsewhere)"
        ) from None
