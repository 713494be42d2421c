"""File formats: raw rows as Parquet, entities as JSON Lines; written and read incrementally."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
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
        # one thread: Arrow's reader threads leave ~30 MB in their malloc arenas (the raw
        # tables of 1M columns), and decode no faster here
        yield from pq.ParquetFile(self.path).iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=columns, use_threads=False
        )

    def rows(
        self,
        columns: list[str] | None = None,
        where: Callable[[pa.RecordBatch], pa.Array] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows as dicts (only those where the `where` mask is true), one batch at a time."""
        for batch in self.batches(columns):
            if where is not None:
                batch = batch.filter(where(batch))
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
    """A JSON Lines file of entities on local disk, and the index of their qualifiedNames."""

    path: Path | None
    names_path: Path | None = None
    fetch: Callable[[], Path] | None = None  # gets the file when `path` is not local yet

    def qualified_names(self) -> list[str]:
        """Every entity's qualifiedName, from the names index when there is one."""
        if self.names_path is not None:
            return read_names(self.names_path)
        return [e["attributes"]["qualifiedName"] for e in self]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        loads = orjson.loads
        if self.path is None and self.fetch is not None:
            self.path = self.fetch()
        with open(self.path, "rb", buffering=1 << 20) as f:
            for line in f:
                if len(line) > 1:
                    yield loads(line)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class NamesIndex:
    """Collects the qualifiedNames of entities on their way to a file: each line of the file is
    a JSON array of the next names (JSON escapes the newlines names may hold). The names are
    held only until their line is written, so memory stays flat."""

    CHUNK = 65_536

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._chunk: list[str] = []

    def watch(self, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        chunk = self._chunk
        for item in items:
            chunk.append(item["attributes"]["qualifiedName"])
            if len(chunk) >= self.CHUNK:
                self._flush()
            yield item

    def add(self, names: Iterable[str]) -> None:
        """Names of entities written without passing through `watch` (already encoded)."""
        chunk = self._chunk
        for name in names:
            chunk.append(name)
            if len(chunk) >= self.CHUNK:
                self._flush()

    def _flush(self) -> None:
        if self._chunk:
            self._file.write(orjson.dumps(self._chunk, option=orjson.OPT_APPEND_NEWLINE))
            self._chunk.clear()

    def close(self) -> None:
        if not self._file.closed:
            self._flush()
            self._file.close()


def iter_name_chunks(path: Path) -> Iterator[list[str]]:
    """The names of a names index, one line (a list of names) at a time."""
    loads = orjson.loads
    with open(path, "rb") as f:
        for line in f:
            yield loads(line)


def iter_names(path: Path) -> Iterator[str]:
    """The names of a names index, in order."""
    for chunk in iter_name_chunks(path):
        yield from chunk


def read_names(path: Path) -> list[str]:
    """All names of a names index."""
    return list(iter_names(path))


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


Progress = Callable[[int], None]  # told the file's size after each write (an upload as it grows)


def write_json_lines(
    items: Iterable[dict[str, Any]],
    path: Path,
    digest: Any | None = None,
    progress: Progress | None = None,
) -> int:
    """Write one JSON object per line (NaN becomes null); returns the line count.

    Encoding stays on this thread; a writer thread hashes (`digest`, e.g. hashlib.sha256())
    and copies each ~1 MiB chunk into the file, so hashing and the kernel's share of writing a
    gigabyte run on another core (both release the GIL).
    """
    count = 0
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    with _ChunkWriter(path, digest, progress) as out:
        lines: list[bytes] = []
        size = 0
        for item in items:
            line = dumps(item, option=newline)
            lines.append(line)
            size += len(line)
            count += 1
            if size >= JSON_CHUNK_BYTES:
                out.put(b"".join(lines))
                lines, size = [], 0
        out.put(b"".join(lines))
    return count


def write_encoded_json_lines(
    chunks: Iterable[tuple[bytes, int]],
    path: Path,
    digest: Any | None = None,
    progress: Progress | None = None,
) -> int:
    """Write already encoded JSON lines, given as (bytes, line count) pairs; returns the line
    count. Hashing and writing run on the writer thread, as in `write_json_lines`."""
    count = 0
    with _ChunkWriter(path, digest, progress) as out:
        for data, lines in chunks:
            view = memoryview(data)  # queued in slices: a few MiB wait for the disk, not chunks
            for start in range(0, len(view), JSON_CHUNK_BYTES):
                out.put(view[start : start + JSON_CHUNK_BYTES])
            count += lines
    return count


JSON_CHUNK_BYTES = 1 << 20
_QUEUED_CHUNKS = 4  # at most this many chunks wait for the disk: memory stays flat


class _ChunkWriter:
    """Writes byte chunks to a file on a background thread, in order."""

    def __init__(
        self, path: Path, digest: Any | None = None, progress: Progress | None = None
    ) -> None:
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by the thread
        self._digest, self._progress = digest, progress
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="pg_metadata-writer")

    def __enter__(self) -> _ChunkWriter:
        self._thread.start()
        return self

    def put(self, chunk: bytes | memoryview) -> None:
        if self._error is not None:
            raise self._error
        if chunk:
            self._queue.put(chunk)

    def _drain(self) -> None:
        written = 0
        try:
            while (chunk := self._queue.get()) is not None:
                if self._digest is not None:
                    self._digest.update(chunk)
                written += self._file.write(chunk)
                if self._progress is not None:
                    self._progress(written)
        except BaseException as exc:  # e.g. disk full: reported on the next put or at exit
            self._error = exc
            while self._queue.get() is not None:  # keep draining so put() never blocks
                pass
        finally:
            self._file.close()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error
