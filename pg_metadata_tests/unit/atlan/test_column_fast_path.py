"""The column-wise fast path builds exactly the records of the per-row reference transform."""

from __future__ import annotations

import pyarrow as pa

from pg_metadata.atlan.columns import column_entities_from_batches, column_entity
from pg_metadata.catalog.datasets import COLUMNS
from pg_metadata_tests.unit.atlan.catalog_rows import COLUMN_ROWS, CTX


def test_fast_path_matches_reference_on_every_golden_column():
    rows = list(COLUMN_ROWS.values())
    table = pa.Table.from_pylist(rows, schema=COLUMNS.schema)
    fast = list(column_entities_from_batches(table.to_batches(max_chunksize=3), CTX))
    assert fast == [column_entity(r, CTX) for r in rows]


def test_fast_path_handles_relation_changes_between_and_within_batches():
    rows = list(COLUMN_ROWS.values()) * 3
    table = pa.Table.from_pylist(rows, schema=COLUMNS.schema)
    fast = list(column_entities_from_batches(table.to_batches(max_chunksize=2), CTX))
    assert [e["attributes"]["qualifiedName"] for e in fast] == [
        column_entity(r, CTX)["attributes"]["qualifiedName"] for r in rows
    ]
    assert fast == [column_entity(r, CTX) for r in rows]
