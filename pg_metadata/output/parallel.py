"""Entity files built on every core: workers turn slices of a raw Parquet file into JSON lines.

The parent hands each worker process one row group at a time; the worker builds the entities,
checks them and encodes them, and sends back the encoded bytes with what the checks and the
names index need. The parent takes the chunks in row-group order, so the file is byte for byte
what one process writes. Workers are forked: they inherit the job (the builder and the names
the checks look up) without pickling it, and share Python's hash seed with the parent, so the
checks' name hashes agree.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import ctypes
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pg_metadata.atlan.validation import Scanner, ScanPart
from pg_metadata.errors import OutputError

# Below this many raw rows one process is quicker than starting workers.
PARALLEL_ROWS = 100_000
PREVIEW = 5


@dataclass
class EncodedChunk:
    """One row group's entities as JSON lines, with their names and check results."""

    data: bytes
    names: list[str]
    scan: ScanPart
    first: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EncodeJob:
    """What every worker does to the row groups of a raw file: build, check, encode."""

    type_name: str
    path: Path
    build: Callable[[Iterable[pa.RecordBatch]], Iterable[dict[str, Any]]]
    scanner: Callable[[], Scanner]


@dataclass
class EncodedEntities:
    """Entities of one typeName arriving as encoded chunks, to be written as JSON Lines."""

    type_name: str
    chunks: Iterable[EncodedChunk]


_JOB: EncodeJob | None = None  # set before the workers fork; they inherit it
_FORKING = threading.Lock()


def encode_row_groups(batches: Iterable[pa.RecordBatch], job: EncodeJob) -> EncodedChunk:
    """Build, check and encode the entities of some raw batches."""
    scanner = job.scanner()
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    lines: list[bytes] = []
    names: list[str] = []
    first: list[dict[str, Any]] = []
    for entity in scanner.watch(job.build(batches)):
        lines.append(dumps(entity, option=newline))
        names.append(entity["attributes"]["qualifiedName"])
        if len(first) < PREVIEW:
            first.append(entity)
    return EncodedChunk(b"".join(lines), names, scanner.part(), first)


def _worker_start() -> None:
    """Keep a worker's freed memory for its next row group: glibc would otherwise hand each
    chunk's buffers back to the kernel and fault them in again (a third of the workers' CPU)."""
    _mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    _mallopt(_M_TRIM_THRESHOLD, 256 << 20)


def _mallopt(parameter: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(parameter, value)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def release_memory() -> None:
    """Hand what this process freed back to the kernel: Arrow's pool, then glibc's heap (tens
    of MB after building a big output's Python objects, which otherwise stay in RSS)."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _row_group(path: Path, index: int) -> list[pa.RecordBatch]:
    return pq.ParquetFile(path).read_row_group(index, use_threads=False).to_batches()


def _encode_group(index: int) -> EncodedChunk:
    assert _JOB is not None
    return encode_row_groups(_row_group(_JOB.path, index), _JOB)


def encoded_chunks(job: EncodeJob, workers: int | None = None) -> Iterator[EncodedChunk]:
    """The entities of a raw file as encoded chunks in file order, built by `workers`
    processes (one process, this one, for small files)."""
    metadata = pq.ParquetFile(job.path).metadata
    workers = workers or _usable_cores()
    # a daemonic process (a Celery prefork worker, say) may not start processes of its own
    daemon = multiprocessing.current_process().daemon
    small = metadata.num_rows < PARALLEL_ROWS or metadata.num_row_groups < 2
    # one job at a time forks workers (they inherit `_JOB`); another thread's builds here
    if workers < 2 or daemon or small or not _FORKING.acquire(blocking=False):
        for index in range(metadata.num_row_groups):
            yield encode_row_groups(_row_group(job.path, index), job)
        return
    global _JOB
    _JOB = job
    # the chunks arriving here (~10 MB each) go back to the kernel when written, instead of
    # piling up in this process's heap (100 MB more peak RSS at 1M columns otherwise)
    _mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    release_memory()  # the workers' RSS starts from this process's
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start
    )
    try:
        # a few row groups ahead of the writer: memory stays flat, and no worker waits
        pending: deque[concurrent.futures.Future[EncodedChunk]] = deque()
        groups = iter(range(metadata.num_row_groups))
        for index in groups:
            pending.append(pool.submit(_encode_group, index))
            if len(pending) > workers:
                break
        while pending:
            try:
                chunk = pending.popleft().result()
            except concurrent.futures.process.BrokenProcessPool:
                raise _worker_died(f"building {job.type_name} entities") from None
            index = next(groups, None)
            if index is not None:
                pending.append(pool.submit(_encode_group, index))
            yield chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOB = None
        _FORKING.release()


def _worker_died(doing: str) -> OutputError:
    return OutputError(
        f"a worker process {doing} exited unexpectedly (killed, e.g. by the out-of-memory "
        "killer: check the machine's free memory); nothing of this database was published, "
        "and the run can be retried"
    )


T = TypeVar("T")


class Background(Generic[T]):
    """`fn(*args)` started now in a forked process (arguments and result pickled); `result()`
    waits for it. With `fork` false, or in a daemonic process (which may not start
    processes), `result()` computes it in this process instead."""

    def __init__(
        self, doing: str, fn: Callable[..., T], args: tuple[Any, ...], fork: bool = True
    ) -> None:
        self._doing, self._fn, self._args = doing, fn, args
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._future: concurrent.futures.Future[T] | None = None
        if fork and not multiprocessing.current_process().daemon:
            context = multiprocessing.get_context("fork")
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
            self._future = self._pool.submit(fn, *args)

    def result(self) -> T:
        """The function's result (its exception, if it raised)."""
        if self._future is None:
            return self._fn(*self._args)
        try:
            return self._future.result()
        except concurrent.futures.process.BrokenProcessPool:
            raise _worker_died(self._doing) from None
        finally:
            self.close(wait=True)

    def close(self, wait: bool = False) -> None:
        """Stop waiting for it (a step that failed first); the process ends on its own."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may run on (containers)
    except AttributeError:
        return os.cpu_count() or 1
