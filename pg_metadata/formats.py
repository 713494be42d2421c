"""File formats: raw rows as Parquet, entities as JSON Lines; written and read incrementally."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_BATCH_ROWS = 8_192  # Python objects per batch stay small: flat memory


class ArrowSource(Protocol):
    """Anything with an Arrow schema that yields record batches."""

    @property
    def schema(self) -> pa.Schema: ...

    def batches(self) -> Iterator[pa.RecordBatch]: ...


@dataclass
class TableSource:
    """An in-memory Arrow table as an ArrowSource."""

    table: pa.Table

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield from self.table.to_batches()


@dataclass
class ParquetFile:
    """A Parquet file on local disk, read back incrementally."""

    path: Path

    @property
    def schema(self) -> pa.Schema:
        return pq.read_schema(self.path)

    @property
    def num_rows(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(self.path).iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=columns
        )

    def rows(self, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Rows as dicts, one batch in memory at a time."""
        for batch in self.batches(columns):
            yield from batch.to_pylist()

    def read_all(self) -> pa.Table:
        return pq.read_table(self.path)


@dataclass
class Entities:
    """A stream of entity dicts of one Atlan typeName, to be written as JSON Lines."""

    type_name: str
    items: Iterable[dict[str, Any]]


@dataclass
class JsonLinesFile:
    """A JSON Lines file on local disk."""

    path: Path

    def __iter__(self) -> Iterator[dict[str, Any]]:
        loads = orjson.loads
        with open(self.path, "rb", buffering=1 << 20) as f:
            for line in f:
                if len(line) > 1:
                    yield loads(line)


def write_parquet(source: ArrowSource, path: Path) -> int:
    """Write batches to a Parquet file; returns the row count."""
    rows = 0
    with pq.ParquetWriter(path, source.schema, compression="snappy") as writer:
        for batch in source.batches():
            if batch.num_rows:
                writer.write_batch(batch)
                rows += batch.num_rows
    pa.default_memory_pool().release_unused()  # hand freed Arrow buffers back to the OS
    return rows


def write_json_lines(items: Iterable[dict[str, Any]], path: Path) -> int:
    """Write one JSON object per line (NaN becomes null); returns the line count."""
    count = 0
    dumps = orjson.dumps
    with open(path, "wb", buffering=1 << 20) as f:
        write = f.write
        for item in items:
            write(dumps(item))
            write(b"\n")
            count += 1
    return count
