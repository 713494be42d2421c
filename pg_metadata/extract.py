"""Read the catalog of one database with a fixed handful of set-based queries.

All queries of one database run in one READ ONLY, REPEATABLE READ transaction (one snapshot).
Each result is streamed with COPY ... TO STDOUT (CSV) into a spool file on local disk, and the
transaction ends before any output is written, so the source is held only as long as the queries
take. Spooled results are then read back as Arrow record batches, so memory stays flat whatever
the size of the catalog.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pyarrow.csv as pacsv

from pg_metadata.datasets import Dataset
from pg_metadata.errors import ExtractionError

BLOCK_SIZE = 1 << 20  # bytes of CSV per record batch; larger blocks spike memory on big spools


@dataclass
class SpooledResult:
    """One query's rows, spooled as CSV; iterate as typed Arrow record batches."""

    dataset: Dataset
    path: Path
    seconds: float = 0.0

    @property
    def schema(self) -> pa.Schema:
        """The dataset's Arrow schema."""
        return self.dataset.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed record batches, read incrementally."""
        schema = self.dataset.schema
        reader = pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={f.name: f.type for f in schema},
                include_columns=schema.names,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
        for batch in reader:
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)

    def read_all(self) -> pa.Table:
        """All rows at once (small datasets only)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


@dataclass
class CatalogSnapshot:
    """Spooled results of one database's catalog read; remove() deletes the spool files."""

    database: str
    results: dict[str, SpooledResult] = field(default_factory=dict)
    statements: int = 0
    seconds: float = 0.0
    workdir: Path | None = None

    def remove(self) -> None:
        """Delete the spool directory."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> CatalogSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def read_catalog(
    conn: psycopg2.extensions.connection,
    datasets: Sequence[Dataset],
    params: dict[str, Any],
    spool_dir: str | Path | None = None,
) -> CatalogSnapshot:
    """Run each dataset's query in one read-only snapshot and spool the rows to disk."""
    database = conn.info.dbname
    workdir = Path(tempfile.mkdtemp(prefix="pg_metadata_", dir=spool_dir))
    snapshot = CatalogSnapshot(database=database, workdir=workdir)
    started = time.perf_counter()
    try:
        with conn.cursor() as cur:
            for dataset in datasets:
                path = workdir / f"{dataset.name}.csv"
                t0 = time.perf_counter()
                _copy_to_file(cur, dataset, params, path, database)
                snapshot.results[dataset.name] = SpooledResult(
                    dataset, path, time.perf_counter() - t0
                )
        conn.commit()
    except BaseException:
        snapshot.remove()
        _rollback_quietly(conn)
        raise
    # BEGIN (implicit, sent by the driver) + one COPY per dataset + COMMIT
    snapshot.statements = len(datasets) + 2
    snapshot.seconds = time.perf_counter() - started
    return snapshot


def _copy_to_file(
    cur: psycopg2.extensions.cursor,
    dataset: Dataset,
    params: dict[str, Any],
    path: Path,
    database: str,
) -> None:
    # mogrify binds the parameters with the driver's own quoting (COPY cannot take parameters).
    encoding = psycopg2.extensions.encodings.get(cur.connection.encoding, "utf-8")
    query = cur.mogrify(dataset.sql(), params).decode(encoding)
    copy = f"COPY (\n{query}\n) TO STDOUT WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')"
    try:
        with open(path, "wb") as out:
            cur.copy_expert(copy, out, size=1 << 20)
    except psycopg2.Error as exc:
        lost = type(exc) in (psycopg2.OperationalError, psycopg2.InterfaceError)
        raise ExtractionError(
            describe_query_error(dataset.name, database, exc), transient=lost
        ) from None
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8").rstrip("\r\n").split(",")
    expected = dataset.column_names
    if [h.strip('"') for h in header] != expected:
        raise ExtractionError(
            f"query {dataset.name}.sql returned columns {header}, expected {expected}; "
            "the SQL file and pg_metadata/datasets.py disagree"
        )


def describe_query_error(name: str, database: str, exc: psycopg2.Error) -> str:
    """One line naming the query, database and what to do."""
    message = " ".join((exc.pgerror or str(exc)).split()) or type(exc).__name__
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        hint = "raise statement_timeout_ms if the catalog is very large"
    elif isinstance(exc, psycopg2.errors.LockNotAvailable):
        hint = "a DDL statement holds a lock; retry later or raise lock_timeout_ms"
    elif isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        hint = "grant the extractor role CONNECT on the database"
    elif isinstance(exc, psycopg2.OperationalError):
        hint = "the connection was lost; the run can be retried"
    else:
        hint = "see the server log for details"
    return f"catalog query {name!r} failed on database {database!r}: {message} ({hint})"


def _rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg2.Error:
        pass


def query_rows(
    conn: psycopg2.extensions.connection, dataset: Dataset, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """A small query's rows as dicts, in one short read-only transaction."""
    try:
        with conn.cursor() as cur:
            cur.execute(dataset.sql(), params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        conn.commit()
    except psycopg2.Error as exc:
        _rollback_quietly(conn)
        lost = type(exc) in (psycopg2.OperationalError, psycopg2.InterfaceError)
        raise ExtractionError(
            describe_query_error(dataset.name, conn.info.dbname, exc), transient=lost
        ) from None
    return rows
