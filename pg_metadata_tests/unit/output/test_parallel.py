"""Entity files built by worker processes are byte for byte what one process writes."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pg_metadata.atlan import columns as COLS
from pg_metadata.atlan import entities as E
from pg_metadata.atlan import validation as V
from pg_metadata.catalog.datasets import COLUMNS
from pg_metadata.errors import OutputError
from pg_metadata.output import parallel
from pg_metadata.output.formats import write_encoded_json_lines, write_json_lines
from pg_metadata_tests.unit.atlan.catalog_rows import COLUMN_ROWS, CTX


def _raw_columns(tmp_path: Path, copies: int) -> Path:
    """The golden column rows, each relation repeated under `copies` schemas, in row groups
    of 7 rows (so relations straddle row groups)."""
    rows = [
        {**row, "schema_name": f"{row['schema_name']}_{i}"}
        for i in range(copies)
        for row in COLUMN_ROWS.values()
    ]
    rows.append(rows[3])  # one duplicate, far from its twin
    path = tmp_path / "columns.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=COLUMNS.schema), path, row_group_size=7)
    return path


def _job(path: Path, known: dict[str, set[str]]) -> parallel.EncodeJob:
    keys = COLS.ForeignKeys()
    return parallel.EncodeJob(
        E.COLUMN,
        path,
        lambda batches: COLS.column_entities_from_batches(batches, CTX, keys),
        lambda: V.Scanner(E.COLUMN, known, columns=True),
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_write_the_bytes_one_process_writes(tmp_path: Path, monkeypatch, workers: int):
    monkeypatch.setattr(parallel, "PARALLEL_ROWS", 0)
    path = _raw_columns(tmp_path, copies=20)
    table = pq.read_table(path)
    entities = list(COLS.column_entities_from_batches(table.to_batches(), CTX))
    parents = {e["attributes"].get("tableQualifiedName") for e in entities}
    known = {t: parents for t in E.RELATION_TYPES}
    known[E.VIEW] = {e["attributes"].get("viewQualifiedName") for e in entities}
    known[E.MATERIALISED_VIEW] = known[E.VIEW]

    serial_digest = hashlib.sha256()
    write_json_lines(iter(entities), tmp_path / "serial.json", serial_digest)
    whole = V.scan(lambda: entities, known, columns=True)

    scanner = V.Scanner(E.COLUMN, known, columns=True)
    names: list[str] = []
    chunks = list(parallel.encoded_chunks(_job(path, known), workers=workers))
    assert len(chunks) == pq.ParquetFile(path).metadata.num_row_groups
    for chunk in chunks:
        scanner.absorb(chunk.scan)
        names += chunk.names
    digest = hashlib.sha256()
    count = write_encoded_json_lines(
        ((c.data, len(c.names)) for c in chunks), tmp_path / "parallel.json", digest
    )

    assert (tmp_path / "parallel.json").read_bytes() == (tmp_path / "serial.json").read_bytes()
    assert digest.hexdigest() == serial_digest.hexdigest()
    assert count == len(entities) == len(names)
    assert names == [e["attributes"]["qualifiedName"] for e in entities]
    assert scanner.finish(lambda: entities) == whole
    assert whole.duplicates.problems == 1
    assert chunks[0].first == [e for e in entities[: parallel.PREVIEW]]


def test_small_files_are_built_in_this_process(tmp_path: Path, monkeypatch):
    path = _raw_columns(tmp_path, copies=1)
    monkeypatch.setattr(parallel, "_encode_group", None)  # a worker would fail
    chunks = list(parallel.encoded_chunks(_job(path, {}), workers=2))
    assert sum(len(c.names) for c in chunks) == len(COLUMN_ROWS) + 1


def test_a_worker_killed_midway_is_one_line_that_says_so(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(parallel, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(parallel, "_encode_group", _die)
    with pytest.raises(OutputError, match="worker process building Column entities exited"):
        list(parallel.encoded_chunks(_job(_raw_columns(tmp_path, copies=3), {}), workers=2))


def _die(index: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
