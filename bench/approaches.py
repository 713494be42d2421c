"""The peers' ways of extracting a PostgreSQL catalog, each run in its own process by the runner.

    python bench/approaches.py inspector --database bench_small --dump cols.jsonl --result r.json
    python bench/approaches.py multi ...
    python bench/approaches.py information_schema ...

- ``inspector``: DataHub/OpenMetadata style. One SQLAlchemy ``Inspector`` per database; per
  schema list tables, views and materialized views, then per relation ``get_columns``,
  ``get_pk_constraint``, ``get_foreign_keys``, ``get_table_comment`` (tables), or
  ``get_columns``, ``get_table_comment``, ``get_view_definition`` (views). ``--sample N``
  reflects N relations spread evenly over the sorted list of all relations (every schema is
  still listed) and reports the per-relation cost so the runner can extrapolate.
- ``multi``: SQLAlchemy 2 multi-table reflection, per schema ``get_multi_columns``,
  ``get_multi_pk_constraint``, ``get_multi_foreign_keys``, ``get_multi_table_comment``, all with
  ``kind=ObjectKind.ANY``.
- ``information_schema``: four set-based queries over the whole database (tables, key columns
  from table_constraints + key_column_usage, columns, views), plain client-side cursors.

Connection: the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD (read by libpq itself).
Every statement is counted with a ``before_cursor_execute`` listener. Each approach writes one
JSON line per column ``[schema, table, column, type, nullable, default, is_pk, is_fk]`` to
``--dump`` (the type as SQLAlchemy compiles it for PostgreSQL, or as information_schema
describes it), which the agreement check compares with our raw Parquet.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.reflection import Inspector, ObjectKind

PG_DIALECT = postgresql.dialect()
SYSTEM_SCHEMAS = ("information_schema",)


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_engine(database: str, application_name: str) -> sa.Engine:
    """A psycopg2 engine on one database; host, port, user and password come from PG* vars."""
    url = sa.URL.create(
        "postgresql+psycopg2",
        username=os.environ.get("PGUSER"),
        host=os.environ.get("PGHOST"),
        port=int(os.environ["PGPORT"]) if os.environ.get("PGPORT") else None,
        database=database,
    )
    return sa.create_engine(url, connect_args={"application_name": application_name})


class StatementCounter:
    """Counts statements sent through an engine (client side)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *args: Any) -> None:
        self.count += 1


def compile_type(coltype: Any) -> str:
    """A reflected SQLAlchemy type as PostgreSQL DDL (``VARCHAR(255)``, ``TEXT[]``)."""
    try:
        return coltype.compile(dialect=PG_DIALECT)
    except Exception:  # NullType and friends: keep something comparable
        return f"<{type(coltype).__name__}>"


class Dump:
    """Column records as JSON Lines, written in blocks; times itself."""

    def __init__(self, path: str | None) -> None:
        self.file: BinaryIO | None = open(path, "wb") if path else None  # noqa: SIM115
        self.rows = 0
        self.seconds = 0.0

    def write(self, records: Iterable[list[Any]]) -> None:
        t0 = time.perf_counter()
        lines = [orjson.dumps(r) for r in records]
        self.rows += len(lines)
        if self.file is not None and lines:
            self.file.write(b"\n".join(lines) + b"\n")
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def column_records(
    schema: str,
    table: str,
    columns: list[dict[str, Any]],
    pk: dict[str, Any] | None,
    fks: list[dict[str, Any]] | None,
) -> list[list[Any]]:
    """Reflected columns of one relation as dump records."""
    pk_cols = set((pk or {}).get("constrained_columns") or [])
    fk_cols = {c for fk in fks or [] for c in fk.get("constrained_columns") or []}
    return [
        [
            schema,
            table,
            c["name"],
            compile_type(c["type"]),
            bool(c["nullable"]),
            c.get("default"),
            c["name"] in pk_cols,
            c["name"] in fk_cols,
        ]
        for c in columns
    ]


def list_schemas(insp: Inspector) -> list[str]:
    """Non-system schemas (SQLAlchemy already hides pg_*)."""
    return [s for s in insp.get_schema_names() if s not in SYSTEM_SCHEMAS]


def run_inspector(
    engine: sa.Engine, dump: Dump, sample: int, result: dict[str, Any], counter: StatementCounter
) -> None:
    """DataHub/OpenMetadata style: reflect relation by relation."""
    with engine.connect() as conn:
        _inspector(sa.inspect(conn), dump, sample, result, counter)


def _inspector(
    insp: Inspector, dump: Dump, sample: int, result: dict[str, Any], counter: StatementCounter
) -> None:
    t0 = time.perf_counter()
    relations: list[tuple[str, str, str]] = []
    for schema in list_schemas(insp):
        relations += [(schema, n, "table") for n in insp.get_table_names(schema)]
        relations += [(schema, n, "view") for n in insp.get_view_names(schema)]
        relations += [(schema, n, "view") for n in insp.get_materialized_view_names(schema)]
    relations.sort()
    result["listing_seconds"] = time.perf_counter() - t0
    result["listing_statements"] = counter.count
    result["relations_total"] = len(relations)
    if sample and sample < len(relations):
        picked = [relations[(k * len(relations)) // sample] for k in range(sample)]
    else:
        picked = relations
    result["relations_reflected"] = len(picked)
    result["sampled"] = len(picked) < len(relations)
    result["rss_before_reflection_mb"] = rss_mb()
    statements_before = counter.count
    t1 = time.perf_counter()
    for schema, name, kind in picked:
        columns = insp.get_columns(name, schema)
        insp.get_table_comment(name, schema)
        if kind == "table":
            pk = insp.get_pk_constraint(name, schema)
            fks = insp.get_foreign_keys(name, schema)
        else:
            insp.get_view_definition(name, schema)
            pk, fks = None, None
        dump.write(column_records(schema, name, columns, pk, fks))
    result["reflection_seconds"] = time.perf_counter() - t1
    result["reflection_statements"] = counter.count - statements_before
    result["rss_after_reflection_mb"] = rss_mb()


def run_multi(
    engine: sa.Engine, dump: Dump, sample: int, result: dict[str, Any], counter: StatementCounter
) -> None:
    """SQLAlchemy 2 multi-table reflection, one batch of queries per schema."""
    with engine.connect() as conn:
        _multi(sa.inspect(conn), dump, result)


def _multi(insp: Inspector, dump: Dump, result: dict[str, Any]) -> None:
    relations = 0
    kind = ObjectKind.ANY
    for schema in list_schemas(insp):
        columns = dict(insp.get_multi_columns(schema=schema, kind=kind))
        pks = dict(insp.get_multi_pk_constraint(schema=schema, kind=kind))
        fks = dict(insp.get_multi_foreign_keys(schema=schema, kind=kind))
        dict(insp.get_multi_table_comment(schema=schema, kind=kind))
        relations += len(columns)
        for (sch, table), cols in sorted(columns.items()):
            key = (sch, table)
            dump.write(column_records(sch or schema, table, cols, pks.get(key), fks.get(key)))
    result["relations_total"] = result["relations_reflected"] = relations
    result["sampled"] = False


INFO_TABLES = """
SELECT table_schema, table_name, table_type
FROM information_schema.tables
WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema !~ '^pg_'
"""
INFO_KEYS = """
SELECT kcu.table_schema, kcu.table_name, kcu.column_name, tc.constraint_type
FROM information_schema.table_constraints AS tc
JOIN information_schema.key_column_usage AS kcu
  ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
 AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name
WHERE tc.constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')
  AND tc.table_schema NOT IN ('pg_catalog', 'information_schema')
"""
INFO_COLUMNS = """
SELECT table_schema, table_name, column_name, ordinal_position, data_type, udt_name,
       character_maximum_length, numeric_precision, numeric_scale, datetime_precision,
       is_nullable, column_default, is_identity, is_generated
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema !~ '^pg_'
ORDER BY table_schema, table_name, ordinal_position
"""
INFO_VIEWS = """
SELECT table_schema, table_name, view_definition
FROM information_schema.views
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
"""
ARRAY_ELEMENTS = {
    "_int2": "smallint", "_int4": "integer", "_int8": "bigint", "_text": "text",
    "_varchar": "character varying", "_bpchar": "character", "_numeric": "numeric",
    "_bool": "boolean", "_date": "date", "_timestamptz": "timestamp with time zone",
    "_timestamp": "timestamp without time zone", "_uuid": "uuid", "_jsonb": "jsonb",
    "_float8": "double precision",
}  # fmt: skip


def info_schema_type(row: Any) -> str:
    """A format_type-like name from information_schema.columns (as a peer would build it)."""
    dt = row.data_type
    if dt == "ARRAY":
        return ARRAY_ELEMENTS.get(row.udt_name, row.udt_name.lstrip("_")) + "[]"
    if dt == "USER-DEFINED":
        return row.udt_name
    if dt in ("character varying", "character") and row.character_maximum_length:
        return f"{dt}({row.character_maximum_length})"
    if dt == "numeric" and row.numeric_precision is not None:
        return f"numeric({row.numeric_precision},{row.numeric_scale})"
    if dt.startswith(("timestamp", "time ")) and row.datetime_precision not in (None, 6):
        head, _, tail = dt.partition(" ")
        return f"{head}({row.datetime_precision}) {tail}"
    return dt


def run_information_schema(
    engine: sa.Engine, dump: Dump, sample: int, result: dict[str, Any], counter: StatementCounter
) -> None:
    """Plain set-based queries over information_schema."""
    with engine.connect() as conn:
        tables = conn.execute(sa.text(INFO_TABLES)).all()
        keys: dict[tuple[str, str, str], set[str]] = {}
        for r in conn.execute(sa.text(INFO_KEYS)):
            keys.setdefault((r.table_schema, r.table_name, r.column_name), set()).add(
                r.constraint_type
            )
        block: list[list[Any]] = []
        for r in conn.execute(sa.text(INFO_COLUMNS)):
            flags = keys.get((r.table_schema, r.table_name, r.column_name), ())
            block.append(
                [
                    r.table_schema,
                    r.table_name,
                    r.column_name,
                    info_schema_type(r),
                    r.is_nullable == "YES",
                    r.column_default,
                    "PRIMARY KEY" in flags,
                    "FOREIGN KEY" in flags,
                ]
            )
            if len(block) >= 10_000:
                dump.write(block)
                block = []
        dump.write(block)
        views = conn.execute(sa.text(INFO_VIEWS)).all()
    result["relations_total"] = result["relations_reflected"] = len(tables)
    result["views"] = len(views)
    result["sampled"] = False


APPROACHES: dict[str, Callable[..., None]] = {
    "inspector": run_inspector,
    "multi": run_multi,
    "information_schema": run_information_schema,
}


def main(argv: list[str] | None = None) -> int:
    """Run one approach and write its result JSON."""
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description="Run one peer extraction approach.")
    parser.add_argument("approach", choices=list(APPROACHES))
    parser.add_argument("--database", required=True)
    parser.add_argument("--dump", help="JSON Lines of reflected columns (for the agreement check)")
    parser.add_argument("--result", required=True, help="where to write the result JSON")
    parser.add_argument("--sample", type=int, default=0, help="inspector: relations to reflect")
    args = parser.parse_args(argv)

    engine = make_engine(args.database, f"bench_{args.approach}")
    counter = StatementCounter(engine)
    dump = Dump(args.dump)
    result: dict[str, Any] = {"approach": args.approach, "database": args.database}
    t0 = time.perf_counter()
    try:
        APPROACHES[args.approach](engine, dump, args.sample, result, counter)
    finally:
        dump.close()
        engine.dispose()
    result.update(
        {
            "extract_seconds": time.perf_counter() - t0,
            "process_seconds": time.perf_counter() - started,
            "dump_seconds": dump.seconds,
            "columns": dump.rows,
            "statements_client": counter.count,
            "peak_rss_self_mb": peak_rss_mb(),
        }
    )
    with open(args.result, "wb") as f:
        f.write(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
