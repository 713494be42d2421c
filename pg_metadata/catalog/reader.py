"""Read the catalog of one database with a fixed handful of set-based queries.

All queries of one database read one READ ONLY, REPEATABLE READ snapshot: one transaction, or
two when a helper connection runs the biggest query alongside the others in the same snapshot.
Each result is streamed with COPY ... TO STDOUT (CSV) into a spool file on local disk, and the
transaction ends before any output is written, so the source is held only as long as the queries
take. Spooled results are then read back as Arrow record batches, so memory stays flat whatever
the size of the catalog.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pg_metadata import telemetry
from pg_metadata.catalog.connection import SESSION_STATEMENTS
from pg_metadata.catalog.datasets import TABLES, VIEW_DEFINITIONS, Dataset
from pg_metadata.errors import ExtractionError

BLOCK_SIZE = 1 << 20  # bytes of CSV per record batch; larger blocks spike memory on big spools


@dataclass
class SpooledResult:
    """One query's rows, spooled as CSV; iterate as typed Arrow record batches."""

    dataset: Dataset
    path: Path
    seconds: float = 0.0
    # (view_definition, is_insertable_into) by table_oid, read apart from the snapshot's
    # transaction (tables only)
    patch: dict[int, tuple] | None = None
    rows: int = 0

    @property
    def schema(self) -> pa.Schema:
        """The dataset's Arrow schema."""
        return self.dataset.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed record batches, read incrementally (with `patch` applied)."""
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
        patch = _patch_arrays(self.patch) if self.patch is not None else None
        for batch in reader:
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            yield batch if patch is None else _patched(batch, patch)

    def read_all(self) -> pa.Table:
        """All rows at once (small datasets only)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


PATCHED = (("view_definition", pa.string()), ("is_insertable_into", pa.bool_()))


def _patch_arrays(patch: dict[int, tuple]) -> tuple[pa.Array, list[pa.Array]]:
    """The patch as Arrow arrays: the oids, and each patched column's values in their order."""
    oids = _arrow_array(list(patch), pa.int64())
    rows = list(patch.values())
    values = [_arrow_array([row[i] for row in rows], t) for i, (_, t) in enumerate(PATCHED)]
    return oids, values


def _arrow_array(values: list[Any], type_: pa.DataType) -> pa.Array:
    """An int64, bool or string array from Python values, None for null, built from its
    buffers: `pa.array` imports pandas (0.5 s and 36 MB a process) to ask if it was given a
    pandas object, and nothing else of a run needs pandas."""
    import numpy as np

    present = np.fromiter((v is not None for v in values), bool, len(values))
    validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    if pa.types.is_int64(type_):
        data = np.fromiter((v or 0 for v in values), np.int64, len(values))
        return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(data)])
    if pa.types.is_boolean(type_):
        truth = np.fromiter((bool(v) for v in values), bool, len(values))
        bits = np.packbits(truth, bitorder="little")
        return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(bits)])
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(values)), out=offsets[1:])
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.large_string(), len(values), buffers).cast(type_)


def _patched(batch: pa.RecordBatch, patch: tuple[pa.Array, list[pa.Array]]) -> pa.RecordBatch:
    """The batch with the columns read apart (`patch` from `_patch_arrays`) merged in by
    table_oid, with Arrow kernels."""
    oids, values = patch
    oid_column = batch.column(batch.schema.get_field_index("table_oid")).cast(pa.int64())
    found = pc.index_in(oid_column, oids)
    has = pc.is_valid(found)
    for (name, _), column in zip(PATCHED, values, strict=True):
        index = batch.schema.get_field_index(name)
        merged = pc.if_else(has, column.take(found), batch.column(index))
        batch = batch.set_column(index, name, merged)
    return batch


SPOOL_PREFIX = "pg_metadata_spool_"  # a killed run's spool folder is swept by a later one
DEFINITION_BATCH = 2000
# Bounds on the definitions' short transactions: how long we wait for someone else's lock (a
# view whose relations someone holds exclusively is skipped), and how long any batch may hold
# its own locks (one that takes longer is redone in smaller batches), so another session's DDL
# never waits for us longer than this, whatever the extractor does meanwhile.
DEFINITION_LOCK_TIMEOUT = "500ms"
DEFINITION_STATEMENT_TIMEOUT = "500ms"
DEFINITIONS_SETTING = "pg_metadata.view_definitions"
# one query string: the rows stay on the server (in a session setting) until after COMMIT
DEFINITIONS_TRANSACTION = (
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
    "<snapshot>"
    "SET LOCAL lock_timeout = %(lock_timeout)s;\n"
    "SET LOCAL statement_timeout = %(statement_timeout)s;\n"
    "<query>;\n"
    "COMMIT"
)
DEFINITIONS_FETCH = (
    "SELECT d, pg_catalog.set_config(%(name)s, '', false) IS NULL "
    "FROM pg_catalog.current_setting(%(name)s) AS d"
)


@dataclass
class ViewDefinitions:
    """What `read_view_definitions` read: (view_definition, is_insertable_into) by table_oid,
    the views left without (locked), its statements, and its longest transaction."""

    found: dict[int, tuple] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    statements: int = 0
    longest_seconds: float = 0.0
    replaced: int = 0  # non-UTF-8 sequences (SQL_ASCII databases), made U+FFFD


def read_view_definitions(
    conn: psycopg2.extensions.connection,
    snapshot_name: str | None,
    params: dict[str, Any],
    database: str,
) -> ViewDefinitions:
    """pg_get_viewdef of every selected view, batch by batch, each batch in its own short
    transaction with short lock and statement timeouts, so no user relation stays locked for
    the catalog read: on the exported snapshot (`snapshot_name`), or, with one connection, on
    a snapshot of its own taken after the catalog read. A batch that meets a lock is redone
    one view at a time (a view still locked is left without a definition, named in
    `skipped`); one that runs out of time, or out of room in the server's lock table, is redone
    in batches half as big. Leaves `conn` in autocommit mode (each query string carries its own
    BEGIN and COMMIT; switching back would cost two statements)."""
    read = ViewDefinitions()
    size = DEFINITION_BATCH
    after = 0
    conn.autocommit = True
    while True:
        base = {**params, "list_only": False, "batch": size}
        result = _definitions(conn, snapshot_name, {**base, "after_oid": after}, database, read)
        if result == "too big" and size > 1:
            size = max(1, size // 2)
            continue
        size = min(DEFINITION_BATCH, size * 2)
        if isinstance(result, str):
            listing = {**base, "after_oid": after, "list_only": True}
            listed = _definitions(conn, snapshot_name, listing, database, read)
            names, more = listed if not isinstance(listed, str) else ([], False)
            if result == "locked":  # someone holds a relation of this batch: one at a time
                rows = [
                    _one_view(conn, snapshot_name, base, database, read, oid, schema, name)
                    for oid, schema, name, *_ in names
                ]
            else:  # a single view's definition took too long (or too many locks)
                rows = names
                read.skipped.extend(f"{schema}.{name}" for _, schema, name, *_ in names)
        else:
            rows, more = result
        for oid, _, _, definition, insertable in rows:
            read.found[oid] = (definition, insertable)
        if not more or not rows:
            return read
        after = rows[-1][0]


def _one_view(
    conn: psycopg2.extensions.connection,
    snapshot_name: str | None,
    base: dict[str, Any],
    database: str,
    read: ViewDefinitions,
    oid: int,
    schema: str,
    name: str,
) -> tuple:
    one = {**base, "after_oid": oid - 1, "batch": 1}
    result = _definitions(conn, snapshot_name, one, database, read)
    found = [] if isinstance(result, str) else result[0]
    if not found:
        read.skipped.append(f"{schema}.{name}")
    return found[0] if found else (oid, schema, name, None, None)


def _definitions(
    conn: psycopg2.extensions.connection,
    snapshot_name: str | None,
    params: dict[str, Any],
    database: str,
    read: ViewDefinitions,
) -> tuple[list[tuple], bool] | str:
    """One batch: its transaction as one query string, then its rows read after the COMMIT
    (2 statements, counted in `read`), and whether views after them may remain; "locked"
    when it ran into someone else's lock, "too big" when it ran out of time or out of room in
    the server's lock table."""
    read.statements += 2
    started = time.perf_counter()
    query = DEFINITIONS_TRANSACTION.replace(
        "<snapshot>", "SET TRANSACTION SNAPSHOT %(snapshot)s;\n" if snapshot_name else ""
    ).replace("<query>", VIEW_DEFINITIONS.sql().rstrip().rstrip(";"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                query,
                {
                    **params,
                    "snapshot": snapshot_name,
                    "lock_timeout": DEFINITION_LOCK_TIMEOUT,
                    "statement_timeout": DEFINITION_STATEMENT_TIMEOUT,
                },
            )
            read.longest_seconds = max(read.longest_seconds, time.perf_counter() - started)
            # as bytes: an SQL_ASCII database's definitions need not be UTF-8
            psycopg2.extensions.register_type(psycopg2.extensions.BYTES, cur)
            cur.execute(DEFINITIONS_FETCH, {"name": DEFINITIONS_SETTING})
            ((stashed, _),) = cur.fetchall()
    except psycopg2.errors.LockNotAvailable:
        _rollback_quietly(conn, explicit=True)
        return "locked"
    except psycopg2.errors.OutOfMemory:
        # "out of shared memory": the batch's locks (each view and what it reads) do not fit
        # the server's lock table (max_locks_per_transaction x max_connections, shared by all)
        _rollback_quietly(conn, explicit=True)
        return "too big"
    except psycopg2.errors.QueryCanceled as exc:
        _rollback_quietly(conn, explicit=True)
        if "statement timeout" in (exc.pgerror or ""):
            return "too big"
        raise ExtractionError(  # cancelled by us (a stop signal) or an operator: stop here
            describe_query_error(VIEW_DEFINITIONS.name, database, exc, conn)
        ) from None
    except psycopg2.Error as exc:
        _rollback_quietly(conn, explicit=True)
        raise ExtractionError(
            describe_query_error(VIEW_DEFINITIONS.name, database, exc, conn),
            transient=connection_lost(exc, conn),
        ) from None
    text = bytes(stashed).decode("utf-8", "replace")
    read.replaced += _replacements(text, stashed)
    stash = json.loads(text)
    return [tuple(row) for row in stash["rows"]], bool(stash["more"])


@dataclass
class CatalogSnapshot:
    """Spooled results of one database's catalog read; remove() deletes the spool files."""

    database: str
    results: dict[str, SpooledResult] = field(default_factory=dict)
    statements: int = 0
    seconds: float = 0.0
    workdir: Path | None = None
    skipped_views: list[str] = field(default_factory=list)  # locked: no definition read
    longest_lock_seconds: float = 0.0  # the longest transaction that locked user relations
    replaced_bytes: int = 0  # non-UTF-8 sequences of an SQL_ASCII database, made U+FFFD

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
    helper: psycopg2.extensions.connection | None = None,
    on_helper: Sequence[Dataset] = (),
) -> CatalogSnapshot:
    """Run each dataset's query in one read-only snapshot and spool the rows to disk.

    With a `helper` connection, the `on_helper` queries (the biggest, then whatever balances
    the two connections' time) run on it while the others run on `conn`, in the same
    snapshot: `conn` exports it (pg_export_snapshot) and the helper imports it (SET TRANSACTION
    SNAPSHOT), as pg_dump -j does. Where the server refuses the export (EXECUTE revoked, or an
    older hot standby), everything runs on `conn`.
    """
    database = conn.info.dbname
    workdir = Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=spool_dir))
    snapshot = CatalogSnapshot(database=database, workdir=workdir)
    started = time.perf_counter()
    # the session's timeouts on each connection, BEGIN (implicit, sent by the driver), COMMIT
    statements = SESSION_STATEMENTS * (1 if helper is None else 2) + 2
    try:
        job = None
        offload = [d for d in on_helper if d in datasets]
        if helper is not None and offload and len(offload) < len(datasets):
            exported = _export_snapshot(conn)
            statements += 1 if exported else 3  # SELECT; or a failed SELECT, ROLLBACK, BEGIN
            if exported:
                statements += 3 + len(offload)  # BEGIN, SET TRANSACTION SNAPSHOT, COPYs, COMMIT
                # view definitions lock: the helper reads them apart, in short transactions
                job = _HelperCopy(
                    helper,
                    exported,
                    offload,
                    params,
                    workdir,
                    snapshot,
                    definitions=TABLES in datasets,
                )
        with job.running(conn) if job else contextlib.nullcontext(), conn.cursor() as cur:
            for dataset in datasets:
                if job is None or dataset not in job.datasets:
                    _spool(cur, dataset, params, workdir, snapshot)
                    statements += 1
        _commit(conn, database)
        read = job.view_definitions if job is not None else None
        if job is None and TABLES in datasets:
            # one connection: the same short transactions, after the snapshot's has ended
            read = read_view_definitions(conn, None, params, database)
        if read is not None:
            statements += read.statements
            snapshot.results[TABLES.name].patch = read.found
            snapshot.skipped_views = read.skipped
            snapshot.longest_lock_seconds = read.longest_seconds
            snapshot.replaced_bytes += read.replaced
    except BaseException:
        snapshot.remove()
        _rollback_quietly(conn)
        if helper is not None:
            _rollback_quietly(helper)
        raise
    snapshot.statements = statements
    snapshot.seconds = time.perf_counter() - started
    return snapshot


def _commit(conn: psycopg2.extensions.connection, database: str) -> None:
    """End the snapshot's transaction; a connection lost here is said so, and retryable."""
    try:
        conn.commit()
    except psycopg2.Error as exc:
        raise ExtractionError(
            describe_query_error(
                "final COMMIT", database, exc, conn, "at the end of the catalog read"
            ),
            transient=connection_lost(exc, conn),
        ) from None


def _spool(
    cur: psycopg2.extensions.cursor,
    dataset: Dataset,
    params: dict[str, Any],
    workdir: Path,
    snapshot: CatalogSnapshot,
) -> None:
    path = workdir / f"{dataset.name}.csv"
    t0 = time.perf_counter()
    attributes = {"db.namespace": snapshot.database, "pg_metadata.query": dataset.name}
    with telemetry.phase("pg_metadata.query", **attributes) as span:
        rows, replaced = _copy_to_file(cur, dataset, params, path, snapshot.database)
        snapshot.replaced_bytes += replaced
        span.set_attribute("pg_metadata.rows", rows)
        span.set_attribute("pg_metadata.bytes", path.stat().st_size)
    telemetry.instruments().rows.add(rows, attributes)
    telemetry.notify("rows", query=dataset.name, rows=rows)
    seconds = time.perf_counter() - t0
    snapshot.results[dataset.name] = SpooledResult(dataset, path, seconds, rows=rows)


def _export_snapshot(conn: psycopg2.extensions.connection) -> str | None:
    """Export the open transaction's snapshot; None where the server refuses."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_export_snapshot()")
            (name,) = cur.fetchone()
        return name
    except psycopg2.Error as exc:
        if connection_lost(exc, conn):
            raise ExtractionError(
                describe_query_error("pg_export_snapshot", conn.info.dbname, exc, conn),
                transient=True,
            ) from None
        conn.rollback()
        return None


@dataclass
class _HelperCopy:
    """Queries on the helper connection, in a thread, inside the exported snapshot."""

    conn: psycopg2.extensions.connection
    snapshot_name: str
    datasets: list[Dataset]
    params: dict[str, Any]
    workdir: Path
    snapshot: CatalogSnapshot
    error: BaseException | None = None
    main_failed: bool = False
    trace_context: Any = None
    definitions: bool = False  # also read the view definitions, after the COPYs
    view_definitions: ViewDefinitions | None = None

    def run(self, main: psycopg2.extensions.connection) -> None:
        try:
            with telemetry.attached(self.trace_context), self.conn.cursor() as cur:
                try:
                    cur.execute("SET TRANSACTION SNAPSHOT %s", (self.snapshot_name,))
                except psycopg2.Error as exc:
                    raise ExtractionError(
                        describe_query_error(
                            "SET TRANSACTION SNAPSHOT", self.snapshot.database, exc, self.conn
                        ),
                        transient=connection_lost(exc, self.conn),
                    ) from None
                for dataset in self.datasets:
                    _spool(cur, dataset, self.params, self.workdir, self.snapshot)
            _commit(self.conn, self.snapshot.database)
            if self.definitions:
                self.view_definitions = read_view_definitions(
                    self.conn, self.snapshot_name, self.params, self.snapshot.database
                )
        except BaseException as exc:
            if not self.main_failed:
                self.error = exc
                main.cancel()  # stop the other queries early; this error is the one reported

    @contextlib.contextmanager
    def running(self, main: psycopg2.extensions.connection) -> Iterator[None]:
        """Run alongside the body; the helper's error wins over the cancel it caused."""
        self.trace_context = telemetry.current()
        thread = threading.Thread(target=self.run, args=(main,), name="pg_metadata-helper")
        thread.start()
        try:
            yield
        except BaseException:
            if self.error is None:  # the main connection failed first: stop the helper
                self.main_failed = True
                self.conn.cancel()
                thread.join()
                raise
            thread.join()
            raise self.error from None
        try:
            thread.join()
        except BaseException:  # interrupted while waiting (a stop signal): stop its COPY too
            self.main_failed = True
            self.conn.cancel()
            thread.join()
            raise
        if self.error is not None:
            raise self.error


def _copy_to_file(
    cur: psycopg2.extensions.cursor,
    dataset: Dataset,
    params: dict[str, Any],
    path: Path,
    database: str,
) -> tuple[int, int]:
    """COPY one query's rows into a CSV file; the number of rows, and of non-UTF-8 byte
    sequences made U+FFFD (SQL_ASCII databases only)."""
    # mogrify binds the parameters with the driver's own quoting (COPY cannot take parameters).
    encoding = psycopg2.extensions.encodings.get(cur.connection.encoding, "utf-8")
    query = cur.mogrify(dataset.sql(), params).decode(encoding)
    # an SQL_ASCII database stores bytes unchecked: converting them to UTF8 on the server fails
    # on the first non-UTF-8 one, so take them as they are (and make them UTF-8 here)
    raw = cur.connection.info.parameter_status("server_encoding") == "SQL_ASCII"
    target = "SQL_ASCII" if raw else "UTF8"
    copy = f"COPY (\n{query}\n) TO STDOUT WITH (FORMAT csv, HEADER true, ENCODING '{target}')"
    try:
        with open(path, "wb") as out:
            cur.copy_expert(copy, out, size=1 << 20)
    except psycopg2.Error as exc:
        raise ExtractionError(
            describe_query_error(dataset.name, database, exc, cur.connection),
            transient=connection_lost(exc, cur.connection),
        ) from None
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").rstrip("\r\n").split(",")
    expected = dataset.column_names
    if [h.strip('"') for h in header] != expected:
        raise ExtractionError(
            f"query {dataset.name}.sql returned columns {header}, expected {expected}; "
            "the SQL file and pg_metadata/catalog/datasets.py disagree"
        )
    return max(cur.rowcount, 0), _make_utf8(path) if raw else 0


def _replacements(text: str, raw: bytes) -> int:
    """How many U+FFFD decoding `raw` (errors="replace") added to `text`."""
    return text.count("\ufffd") - bytes(raw).count("\ufffd".encode())


def _make_utf8(path: Path) -> int:
    """Rewrite a spool file of an SQL_ASCII database as UTF-8: valid UTF-8 stays as it is
    (what most such databases hold), every other byte sequence becomes U+FFFD; the number of
    replaced sequences. CSV structure is ASCII, so it is untouched."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    replaced = 0
    fixed = path.with_suffix(".utf8")
    with open(path, "rb") as src, open(fixed, "wb") as out:
        while chunk := src.read(1 << 20):
            text = decoder.decode(chunk)
            replaced += _replacements(text, chunk)
            out.write(text.encode("utf-8"))
        tail = decoder.decode(b"", final=True)
        replaced += tail.count("\ufffd")
        out.write(tail.encode("utf-8"))
    fixed.replace(path)
    return replaced


# SQLSTATEs that mean "try again": the server is going away or not accepting us yet, or (on a
# hot standby) recovery cancelled the query. Everything else is a property of the catalog or
# the role and fails the same way on a retry.
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001"})


def connection_lost(exc: psycopg2.Error, conn: psycopg2.extensions.connection | None) -> bool:
    """Whether a query failed because the session went away (worth a retry), not the query."""
    code = exc.pgcode or ""
    if code in _TRANSIENT_SQLSTATES or code.startswith("08"):
        return True
    if code:
        return False  # the server answered with an error of this query: permanent
    # no SQLSTATE: libpq lost the link (incl. "error with status PGRES_COPY_OUT and no message")
    closed = conn is not None and conn.closed != 0
    return closed or isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)


def describe_query_error(
    name: str,
    database: str,
    exc: psycopg2.Error,
    conn: psycopg2.extensions.connection | None = None,
    where: str = "",
) -> str:
    """One line naming the query (or `where` it happened), database and what to do."""
    message = " ".join((exc.pgerror or str(exc)).split()) or type(exc).__name__
    if connection_lost(exc, conn):
        return (
            f"the server closed the connection {where or f'during the {name} query'} on database "
            f"{database!r} ({message}); the server restarted or the network dropped, and the "
            "run can be retried"
        )
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        hint = "raise statement_timeout_ms if the catalog is very large"
    elif isinstance(exc, psycopg2.errors.LockNotAvailable):
        hint = "a DDL statement holds a lock; retry later or raise lock_timeout_ms"
    elif isinstance(exc, psycopg2.errors.InsufficientPrivilege) and "function" in message:
        hint = "grant EXECUTE on that function to the extractor role (PUBLIC has it by default)"
    elif isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        hint = "grant the extractor role CONNECT on the database"
    else:
        hint = "see the server log for details"
    return f"catalog query {name!r} failed on database {database!r}: {message} ({hint})"


def _rollback_quietly(conn: psycopg2.extensions.connection, explicit: bool = False) -> None:
    """End a failed transaction; `explicit` for one the query string began (autocommit on)."""
    try:
        if conn.closed:
            return
        if explicit:
            with conn.cursor() as cur:
                cur.execute("ROLLBACK")
        else:
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
        raise ExtractionError(
            describe_query_error(dataset.name, conn.info.dbname, exc, conn),
            transient=connection_lost(exc, conn),
        ) from None
    return rows
