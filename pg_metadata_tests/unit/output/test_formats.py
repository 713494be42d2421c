"""File formats: JSON Lines for entities, Parquet for raw rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pg_metadata.catalog.datasets import BY_NAME, COLUMNS, SCHEMAS
from pg_metadata.output.formats import (
    JsonLinesFile,
    ParquetFile,
    TableSource,
    write_json_lines,
    write_parquet,
)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name}")


def strict_lines(path: Path) -> list[Any]:
    """Every line parsed by a strict JSON parser (NaN/Infinity rejected)."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line, parse_constant=_no_constants) for line in text.splitlines()]


def test_write_json_lines_one_object_per_line(tmp_path: Path) -> None:
    items = [
        {"typeName": "Table", "attributes": {"name": "orders", "rowCount": 5}},
        {"typeName": "Column", "attributes": {"name": 'naïve "q"\nline', "score": 0.5}},
        {"typeName": "View", "attributes": {}, "customAttributes": {"engine": None}},
    ]
    path = tmp_path / "e.json"
    assert write_json_lines(iter(items), path) == 3
    lines = strict_lines(path)
    assert lines == items
    assert all(isinstance(line, dict) for line in lines)
    assert list(JsonLinesFile(path)) == items


def test_nan_and_infinity_become_null(tmp_path: Path) -> None:
    items = [{"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": {"d": float("nan")}}]
    path = tmp_path / "nan.json"
    assert write_json_lines(items, path) == 1
    assert strict_lines(path) == [{"a": None, "b": [None, None, 1.5], "c": {"d": None}}]


def test_write_json_lines_many_items_across_buffer_flushes(tmp_path: Path) -> None:
    items = ({"i": i} for i in range(10_001))
    path = tmp_path / "many.json"
    assert write_json_lines(items, path) == 10_001
    lines = strict_lines(path)
    assert len(lines) == 10_001
    assert lines[0] == {"i": 0} and lines[4096] == {"i": 4096} and lines[-1] == {"i": 10_000}


def test_write_json_lines_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    assert write_json_lines([], path) == 0
    assert path.exists() and path.read_bytes() == b""
    assert list(JsonLinesFile(path)) == []


SCHEMA_ROWS = [
    {
        "database_name": "shop",
        "schema_oid": 2200 + i,
        "schema_name": f"s{i}",
        "owner": "postgres",
        "comment": None if i % 2 else f"comment é {i}",
        "table_count": i,
        "views_count": 0,
        "partition_count": None,
    }
    for i in range(5)
]


def test_write_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "schemas.parquet"
    table = pa.Table.from_pylist(SCHEMA_ROWS, schema=SCHEMAS.schema)
    assert write_parquet(TableSource(table), path) == 5
    pf = ParquetFile(path)
    assert pf.num_rows == 5
    assert list(pf.rows()) == SCHEMA_ROWS
    assert list(pf.rows(["schema_name"])) == [
        {"schema_name": r["schema_name"]} for r in SCHEMA_ROWS
    ]
    assert pf.schema.equals(SCHEMAS.schema, check_metadata=True)  # descriptions survive
    assert pf.read_all().equals(table)
    odd = list(pf.rows(where=lambda b: pc.greater(b.column("table_count"), 2)))
    assert odd == [r for r in SCHEMA_ROWS if r["table_count"] > 2] and len(odd) == 2


def test_write_parquet_several_batches(tmp_path: Path) -> None:
    batch = pa.RecordBatch.from_pylist(SCHEMA_ROWS, schema=SCHEMAS.schema)
    empty = pa.RecordBatch.from_pylist([], schema=SCHEMAS.schema)
    table = pa.Table.from_batches([batch, empty, batch], schema=SCHEMAS.schema)
    path = tmp_path / "multi.parquet"
    assert write_parquet(TableSource(table), path) == 10
    assert ParquetFile(path).num_rows == 10
    assert list(ParquetFile(path).rows()) == SCHEMA_ROWS * 2


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_write_parquet_empty_keeps_schema(name: str, tmp_path: Path) -> None:
    dataset = BY_NAME[name]
    path = tmp_path / f"{name}.parquet"
    assert write_parquet(TableSource(dataset.schema.empty_table()), path) == 0
    pf = ParquetFile(path)
    assert pf.num_rows == 0
    assert list(pf.rows()) == []
    assert pf.schema.names == dataset.column_names
    assert pf.schema.equals(dataset.schema, check_metadata=True)
    assert pq.read_table(path).num_rows == 0


def test_parquet_keeps_column_types(tmp_path: Path) -> None:
    row = {n: None for n in COLUMNS.column_names} | {
        "ordinal_position": 3,
        "is_nullable": False,
        "numeric_scale": 2,
        "octet_length": 1020,
    }
    path = tmp_path / "columns.parquet"
    write_parquet(TableSource(pa.Table.from_pylist([row], schema=COLUMNS.schema)), path)
    (back,) = ParquetFile(path).rows()
    assert back == row
    assert back["is_nullable"] is False
    assert ParquetFile(path).schema.field("ordinal_position").type == pa.int32()


def test_write_json_lines_keeps_order_across_many_chunks(tmp_path: Path) -> None:
    payload = "x" * 300  # ~3.5 MiB in all: several chunks pass through the writer thread
    items = ({"i": i, "p": payload} for i in range(12_000))
    path = tmp_path / "chunks.json"
    assert write_json_lines(items, path) == 12_000
    assert [line["i"] for line in strict_lines(path)] == list(range(12_000))


def test_write_json_lines_reports_a_full_disk() -> None:
    items = ({"i": i, "p": "y" * 500} for i in range(10_000))
    with pytest.raises(OSError, match="No space left"):
        write_json_lines(items, Path("/dev/full"))


def test_write_json_lines_passes_on_a_failing_stream(tmp_path: Path) -> None:
    def broken():
        yield {"i": 0}
        raise RuntimeError("transform failed")

    with pytest.raises(RuntimeError, match="transform failed"):
        write_json_lines(broken(), tmp_path / "broken.json")
