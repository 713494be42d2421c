"""Generate a large, realistic PostgreSQL catalog for the extraction benchmark.

One database with S schemas x T relations per schema x about C columns per relation:

- ordinary tables with mixed types (integer, bigint, smallint, numeric(p,s), varchar(n), char(n),
  text, timestamptz, timestamp, date, time, boolean, jsonb, uuid, bytea, interval,
  double precision, one- and two-dimensional arrays), some NOT NULL, some defaults, identity
  (ALWAYS and BY DEFAULT), serial and generated columns, a few mixed-case quoted names;
- primary keys (single, composite, uuid), foreign keys (within the schema and to schema 0),
  unique constraints and unique indexes, table and column comments;
- views (some over other views) and materialized views;
- range-partitioned tables with partitions, one of them sub-partitioned by list (depth 2);
- a few rows in a fraction of the tables, which are then ANALYZEd.

The DDL is streamed: each schema's objects are rendered into multi-statement strings of at most
``--chunk`` relations and committed per chunk (so a transaction never needs more than a few
thousand locks, whatever max_locks_per_transaction is), on ``--jobs`` parallel connections.
Schema 0 is created first because other schemas reference it. Everything is deterministic for a
given size and seed. Finally the system catalogs are VACUUM ANALYZEd, as autovacuum would have
done on a real server, so the planner sees their real sizes.

    .venv/bin/python bench/generate_catalog.py --size small --database bench_small \\
        --dsn "host=127.0.0.1 port=5432 user=postgres"
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions
from psycopg2 import sql as pgsql


@dataclass(frozen=True)
class Size:
    """Shape of a generated catalog."""

    schemas: int
    relations_per_schema: int
    mean_columns: int
    # schema-per-tenant: schema s gets the tables of schema s % templates (0: each its own)
    templates: int = 0


# Per 100 relations of a schema: 80 tables, 2 partitioned trees (7 + 5 relations), 6 views,
# 2 materialized views; with tables of 10-36 columns that is ~20.5 columns per relation.
SIZES: dict[str, Size] = {
    "tiny": Size(schemas=3, relations_per_schema=100, mean_columns=20),
    "small": Size(schemas=10, relations_per_schema=100, mean_columns=20),
    "medium": Size(schemas=50, relations_per_schema=200, mean_columns=20),
    "large": Size(schemas=100, relations_per_schema=500, mean_columns=20),
    # ~500,000 relations and ~10M columns: 2,000 tenant schemas, each with one of 20 table sets
    "xlarge": Size(schemas=2000, relations_per_schema=250, mean_columns=20, templates=20),
}

WORDS = (  # noqa: SIM905
    "account customer order invoice payment product item stock warehouse shipment supplier "
    "employee department region country city address contact campaign lead opportunity ticket "
    "event session device sensor reading metric budget forecast ledger journal asset contract "
    "policy claim vendor price discount tax currency channel store cart review rating tag"
).split()
COLUMN_WORDS = (  # noqa: SIM905
    "name code status amount total quantity price cost rate score label title note description "
    "email phone url kind level rank weight height width volume count flag source target owner "
    "comment version external_ref batch due started finished expires region category"
).split()


@dataclass(frozen=True)
class ColType:
    """A column type: its DDL, a default expression, a value expression over `g` for rows."""

    ddl: str
    default: str | None
    value: str


def _types() -> list[tuple[ColType, int]]:
    """Column types with relative weights (a rough mix of what OLTP schemas use)."""
    t = ColType
    return [
        (t("integer", "0", "g"), 10),
        (t("bigint", "0", "g::bigint * 1000"), 8),
        (t("smallint", "1", "(g % 100)::smallint"), 2),
        (t("numeric(12,2)", "0", "g * 1.25"), 7),
        (t("numeric(18,4)", "0", "g * 0.0001"), 3),
        (t("numeric", None, "g / 3.0"), 2),
        (t("varchar(20)", "'n/a'", "left('v' || g, 20)"), 5),
        (t("varchar(50)", "''", "'value ' || g"), 6),
        (t("varchar(100)", None, "'longer value ' || g"), 5),
        (t("varchar(255)", None, "'https://example.com/' || g"), 6),
        (t("char(2)", "'XX'", "'AB'"), 2),
        (t("text", "''", "'some text ' || g"), 10),
        (t("timestamptz", "now()", "now() - g * interval '1 day'"), 8),
        (t("timestamp", "CURRENT_TIMESTAMP", "localtimestamp - g * interval '1 hour'"), 2),
        (t("timestamptz(3)", None, "now()"), 1),
        (t("date", "CURRENT_DATE", "current_date - g"), 6),
        (t("time", None, "time '12:00' + g * interval '1 minute'"), 1),
        (t("boolean", "false", "g % 2 = 0"), 7),
        (t("jsonb", "'{}'::jsonb", "jsonb_build_object('k', g)"), 4),
        (t("uuid", "gen_random_uuid()", "gen_random_uuid()"), 3),
        (t("bytea", None, "decode('00ff', 'hex')"), 1),
        (t("interval", None, "g * interval '1 hour'"), 1),
        (t("double precision", None, "g * 0.5"), 2),
        (t("text[]", "'{}'::text[]", "ARRAY['a' || g, 'b']"), 2),
        (t("integer[]", None, "ARRAY[g, g + 1]"), 1),
        (t("varchar(30)[]", None, "ARRAY['x' || g]::varchar(30)[]"), 1),
        (t("integer[][]", None, "ARRAY[[g, g], [g, g]]"), 1),
    ]


TYPES = _types()
TYPE_CHOICES = [t for t, _ in TYPES]
TYPE_WEIGHTS = [w for _, w in TYPES]


def ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's quote_ident would (quotes only when needed)."""
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Column:
    """One column of a generated table."""

    name: str
    ddl: str  # full column definition after the name
    value: str | None  # value expression for generated rows; None = leave out of INSERT


@dataclass
class Table:
    """What later objects of the schema need to know about a created table."""

    schema: str
    name: str
    columns: list[Column]
    pk_type: str | None = None  # type of a single-column integer PK (FK target), else None

    @property
    def qualified(self) -> str:
        return f"{ident(self.schema)}.{ident(self.name)}"


@dataclass
class SchemaPlan:
    """Rendered DDL chunks of one schema plus bookkeeping for the summary."""

    name: str
    chunks: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # run after every schema exists
    relations: int = 0
    columns: int = 0


class CatalogGenerator:
    """Renders the DDL of each schema deterministically from (size, seed, schema index)."""

    def __init__(self, size: Size, seed: int = 42, chunk: int = 250) -> None:
        self.size = size
        self.seed = seed
        self.chunk = chunk
        self.anchor: Table | None = None  # schema 0's first table: cross-schema FK target

    def schema_name(self, s: int) -> str:
        # one mixed-case schema name, to exercise quoting
        if s == 1:
            return "Sales Ops"
        return f"{WORDS[s % len(WORDS)]}_s{s:03d}"

    def template(self, s: int) -> int:
        """The schema whose tables schema s repeats (itself unless the size has templates;
        schemas 0 and 1, the anchor and `Sales Ops`, are always their own)."""
        return s % self.size.templates if self.size.templates and s > 1 else s

    def plan(self, s: int) -> SchemaPlan:
        """All DDL of schema number s, as chunks of at most `chunk` relations each."""
        rng = random.Random(self.seed * 100_003 + self.template(s))
        schema = self.schema_name(s)
        plan = SchemaPlan(schema)
        per_100 = self.size.relations_per_schema / 100
        n_tables = round(80 * per_100)
        n_trees = max(1, round(2 * per_100))
        n_views = round(6 * per_100)
        n_mviews = round(2 * per_100)
        objects: list[tuple[str, int, int]] = []  # (ddl, relations, columns)
        head = [f"CREATE SCHEMA {ident(schema)};"]
        if s % 2 == 0:
            head.append(f"COMMENT ON SCHEMA {ident(schema)} IS {literal('Schema ' + schema)};")
        objects.append(("\n".join(head), 0, 0))
        tables: list[Table] = []
        analysed: list[str] = []
        for i in range(n_tables):
            ddl, table, has_rows = self._table(rng, schema, s, i, tables, plan.deferred)
            tables.append(table)
            if has_rows:
                analysed.append(table.qualified)
            objects.append((ddl, 1, len(table.columns)))
        for k in range(n_trees):
            ddl, relations, columns, root = self._partitioned(rng, schema, s, k)
            if k == 0 and s % 3 == 0:
                analysed.append(root)
            objects.append((ddl, relations, columns))
        views: list[Table] = []
        for v in range(n_views):
            ddl, view = self._view(rng, schema, v, tables, views)
            views.append(view)
            objects.append((ddl, 1, len(view.columns)))
        for m in range(n_mviews):
            ddl, ncols = self._matview(rng, schema, m, tables)
            objects.append((ddl, 1, ncols))
        plan.relations = sum(r for _, r, _ in objects)
        plan.columns = sum(c for _, _, c in objects)
        # group into transactions of at most `chunk` relations; ANALYZE goes with the last one
        current: list[str] = []
        count = 0
        for ddl, relations, _ in objects:
            if current and count + relations > self.chunk:
                plan.chunks.append("\n".join(current))
                current, count = [], 0
            current.append(ddl)
            count += relations
        if analysed:
            current.append(f"ANALYZE {', '.join(analysed)};")
        plan.chunks.append("\n".join(current))
        if s == 0 and tables:
            self.anchor = next((t for t in tables if t.pk_type), None)
        return plan

    def _columns(self, rng: random.Random, n: int, taken: set[str]) -> list[Column]:
        cols = []
        for _ in range(n):
            ctype = rng.choices(TYPE_CHOICES, TYPE_WEIGHTS)[0]
            base = rng.choice(COLUMN_WORDS)
            name = base
            j = 2
            while name in taken:
                name = f"{base}_{j}"
                j += 1
            taken.add(name)
            if rng.random() < 0.03:  # a few mixed-case names that need quoting
                name = name.title().replace("_", "")
                if name in taken:
                    name += "X"
                taken.add(name)
            parts = [ctype.ddl]
            if ctype.default is not None and rng.random() < 0.2:
                parts.append(f"DEFAULT {ctype.default}")
            if rng.random() < 0.3:
                parts.append("NOT NULL")
            cols.append(Column(name, " ".join(parts), ctype.value))
        return cols

    def _table(
        self,
        rng: random.Random,
        schema: str,
        s: int,
        i: int,
        earlier: list[Table],
        deferred: list[str],
    ) -> tuple[str, Table, bool]:
        t = self.template(s)  # tenants of one template: the same table names
        name = f"{WORDS[i % len(WORDS)]}_{WORDS[(i * 7 + t) % len(WORDS)]}_{i:05d}"
        if i % 97 == 13:
            name = f"Legacy {name.title()}"  # mixed case and a space
        table = Table(schema, name, [])
        kind = i % 10
        cols: list[Column] = []
        pk_clause = ""
        if kind in (1, 2):
            cols.append(Column("id", "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", None))
            table.pk_type = "bigint"
        elif kind == 3:
            cols.append(Column("id", "bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", None))
            table.pk_type = "bigint"
        elif kind == 4:
            cols.append(Column("id", "serial PRIMARY KEY", "g"))
            table.pk_type = "integer"
        elif kind == 5:
            cols.append(Column("tenant_id", "integer NOT NULL", "g"))
            cols.append(Column("id", "integer NOT NULL", "g"))
            pk_clause = "PRIMARY KEY (tenant_id, id)"
        elif kind == 6:
            cols.append(Column("id", "uuid DEFAULT gen_random_uuid() PRIMARY KEY", None))
        elif kind == 0:
            cols.append(Column("row_no", "bigint", "g"))  # a heap without a primary key
        else:
            cols.append(Column("id", "integer PRIMARY KEY", "g"))
            table.pk_type = "integer"
        taken = {c.name for c in cols}
        cols.append(Column("created_at", "timestamptz NOT NULL DEFAULT now()", None))
        taken.add("created_at")
        target = rng.randint(10, 36)
        candidates = [t for t in earlier if t.pk_type]
        if i % 3 == 1 and candidates:
            parent = candidates[rng.randrange(len(candidates))]
            cols.append(
                Column("parent_id", f"{parent.pk_type} REFERENCES {parent.qualified} (id)", None)
            )
            taken.add("parent_id")
        if s > 0 and i % 25 == 7 and self.anchor is not None:
            # Cross-schema FK, added after all schemas exist: two parallel transactions adding
            # FKs to the same table would serialise on its ShareRowExclusive lock.
            anchor = self.anchor
            cols.append(Column("shared_ref_id", str(anchor.pk_type), None))
            taken.add("shared_ref_id")
            deferred.append(
                f"ALTER TABLE {table.qualified} ADD FOREIGN KEY (shared_ref_id) "
                f"REFERENCES {anchor.qualified} (id) ON DELETE SET NULL;"
            )
        if i % 4 == 2:
            cols.append(Column("code", "varchar(50) UNIQUE", "'code-' || g"))
            taken.add("code")
        if i % 10 == 8:
            cols.append(Column("amount", "numeric(12,2)", "g * 2.5"))
            cols.append(
                Column("amount_with_tax", "numeric GENERATED ALWAYS AS (amount * 1.2) STORED", None)
            )
            taken.update({"amount", "amount_with_tax"})
        cols.extend(self._columns(rng, max(0, target - len(cols)), taken))
        table.columns = cols
        body = [f"    {ident(c.name)} {c.ddl}" for c in cols]
        if pk_clause:
            body.append(f"    {pk_clause}")
        stmts = [f"CREATE TABLE {table.qualified} (\n" + ",\n".join(body) + "\n);"]
        if i % 7 == 3:
            col = cols[-1].name
            idx = ident(f"{name[:40]}_{col[:15]}_uidx")
            stmts.append(f"CREATE UNIQUE INDEX {idx} ON {table.qualified} ({ident(col)});")
        if i % 2 == 0:
            text = f"{name.replace('_', ' ')}: one row per {WORDS[i % len(WORDS)]}"
            if i % 20 == 0:
                text += " (it's the <b>master</b> list, née légacy)"
            stmts.append(f"COMMENT ON TABLE {table.qualified} IS {literal(text)};")
        for c in cols:
            if rng.random() < 0.2:
                stmts.append(
                    f"COMMENT ON COLUMN {table.qualified}.{ident(c.name)} IS "
                    f"{literal('The ' + c.name.replace('_', ' ') + ' of the row')};"
                )
        # (no rows where a unique index sits on an arbitrary column: values may repeat)
        has_rows = rng.random() < 0.05 and i % 7 != 3
        if has_rows:
            insert_cols = [c for c in cols if c.value is not None]
            n = rng.randint(3, 20)
            stmts.append(
                f"INSERT INTO {table.qualified} ({', '.join(ident(c.name) for c in insert_cols)})"
                f" SELECT {', '.join(c.value or 'NULL' for c in insert_cols)}"
                f" FROM generate_series(1, {n}) AS g;"
            )
        return "\n".join(stmts), table, has_rows

    def _partitioned(
        self, rng: random.Random, schema: str, s: int, k: int
    ) -> tuple[str, int, int, str]:
        """A range-partitioned table by quarter; tree 0 has a list-sub-partitioned quarter."""
        name = f"events_{k:03d}" if k % 2 == 0 else f"measurements_{k:03d}"
        root = f"{ident(schema)}.{ident(name)}"
        extra = self._columns(rng, rng.randint(6, 12), {"id", "created_on", "region", "amount"})
        cols = [
            "    id bigint NOT NULL",
            "    created_on date NOT NULL",
            "    region varchar(10) NOT NULL DEFAULT 'eu'",
            "    amount numeric(12,2)",
            *(f"    {ident(c.name)} {c.ddl}" for c in extra),
            "    PRIMARY KEY (id, created_on, region)",
        ]
        ncols = 4 + len(extra)
        stmts = [
            f"CREATE TABLE {root} (\n" + ",\n".join(cols) + "\n) PARTITION BY RANGE (created_on);"
        ]
        stmts.append(f"COMMENT ON TABLE {root} IS {literal('Partitioned by quarter')};")
        relations = 1
        bounds = [
            ("2024-01-01", "2024-04-01"),
            ("2024-04-01", "2024-07-01"),
            ("2024-07-01", "2024-10-01"),
            ("2024-10-01", "2025-01-01"),
        ]
        for q, (lo, hi) in enumerate(bounds, start=1):
            part = f"{ident(schema)}.{ident(f'{name}_2024q{q}')}"
            sub = k == 0 and q == 4
            stmts.append(
                f"CREATE TABLE {part} PARTITION OF {root} FOR VALUES FROM ('{lo}') TO ('{hi}')"
                + (" PARTITION BY LIST (region);" if sub else ";")
            )
            relations += 1
            if sub:
                for region in ("eu", "us"):
                    leaf = f"{ident(schema)}.{ident(f'{name}_2024q{q}_{region}')}"
                    stmts.append(
                        f"CREATE TABLE {leaf} PARTITION OF {part} FOR VALUES IN ('{region}');"
                    )
                    relations += 1
        if k == 0 and s % 3 == 0:
            names = ", ".join(ident(c.name) for c in extra)
            values = ", ".join(c.value or "NULL" for c in extra)
            stmts.append(
                f"INSERT INTO {root} (id, created_on, region, amount, {names}) SELECT g, "
                f"date '2024-01-01' + (g * 3), CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, "
                f"{values} FROM generate_series(1, 120) AS g;"
            )
        return "\n".join(stmts), relations, ncols * relations, root

    def _view(
        self, rng: random.Random, schema: str, v: int, tables: list[Table], views: list[Table]
    ) -> tuple[str, Table]:
        name = f"v_{WORDS[(v * 3) % len(WORDS)]}_{v:04d}"
        if v % 3 == 2 and views:  # a view over a view
            src = views[rng.randrange(len(views))]
            picked = src.columns[: max(2, len(src.columns) - 2)]
            where = ""
        else:
            src = tables[rng.randrange(len(tables))]
            picked = rng.sample(src.columns, min(len(src.columns), rng.randint(4, 10)))
            where = f" WHERE {ident(picked[0].name)} IS NOT NULL"
        select = ", ".join(f"src.{ident(c.name)}" for c in picked)
        view = Table(schema, name, [Column(c.name, "", None) for c in picked])
        stmts = [
            f"CREATE VIEW {view.qualified} AS SELECT {select} FROM {src.qualified} AS src{where};"
        ]
        if v % 2 == 0:
            stmts.append(
                f"COMMENT ON VIEW {view.qualified} IS {literal('Reporting view ' + name)};"
            )
        return "\n".join(stmts), view

    def _matview(
        self, rng: random.Random, schema: str, m: int, tables: list[Table]
    ) -> tuple[str, int]:
        name = f"mv_{WORDS[(m * 5) % len(WORDS)]}_summary_{m:04d}"
        src = tables[rng.randrange(len(tables))]
        qualified = f"{ident(schema)}.{ident(name)}"
        stmts = [
            f"CREATE MATERIALIZED VIEW {qualified} AS SELECT date_trunc('day', created_at) AS day,"
            f" count(*) AS row_count, max(created_at) AS latest FROM {src.qualified} GROUP BY 1;",
            f"COMMENT ON MATERIALIZED VIEW {qualified} IS "
            f"{literal('Daily summary of ' + src.name)};",
        ]
        return "\n".join(stmts), 3


CATALOG_TABLES = (  # noqa: SIM905
    "pg_class pg_attribute pg_type pg_namespace pg_constraint pg_depend pg_description "
    "pg_attrdef pg_index pg_inherits pg_partitioned_table pg_rewrite pg_sequence pg_statistic"
).split()


@dataclass
class GenerateResult:
    """What was created and how long it took."""

    database: str
    schemas: int
    relations: int
    columns: int
    seconds: float


def generate(
    dsn: str,
    database: str,
    size: Size,
    seed: int = 42,
    jobs: int = 2,
    chunk: int = 250,
    progress: bool = True,
) -> GenerateResult:
    """(Re)create `database` on the server of `dsn` and fill it with the generated catalog."""
    started = time.perf_counter()
    admin = psycopg2.connect(dsn, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        db = pgsql.Identifier(database)
        cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        cur.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(db))
    admin.close()

    gen = CatalogGenerator(size, seed, chunk)
    totals = {"relations": 0, "columns": 0, "done": 0}
    deferred: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    conns: list[psycopg2.extensions.connection] = []

    def connection() -> psycopg2.extensions.connection:
        if not hasattr(local, "conn"):
            local.conn = psycopg2.connect(dsn, dbname=database, application_name="bench_generate")
            with local.conn.cursor() as c:
                c.execute("SET synchronous_commit = off")
            local.conn.commit()
            with lock:
                conns.append(local.conn)
        return local.conn

    def build(s: int) -> None:
        plan = gen.plan(s)
        conn = connection()
        for script in plan.chunks:
            with conn.cursor() as c:
                c.execute(script)
            conn.commit()
        with lock:
            deferred.extend(plan.deferred)
            totals["relations"] += plan.relations
            totals["columns"] += plan.columns
            totals["done"] += 1
            if progress and (totals["done"] % max(1, size.schemas // 10) == 0):
                elapsed = time.perf_counter() - started
                print(
                    f"  generate {database}: {totals['done']}/{size.schemas} schemas, "
                    f"{totals['relations']} relations, {totals['columns']} columns, "
                    f"{elapsed:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )

    try:
        build(0)  # the others reference schema 0's anchor table
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(build, range(1, size.schemas)))
        conn = connection()
        with conn.cursor() as c:
            c.execute("\n".join(deferred) or "SELECT 1")
        conn.commit()
    finally:
        for c in conns:
            c.close()
    vacuum_catalogs(dsn, database)
    return GenerateResult(
        database,
        size.schemas,
        totals["relations"],
        totals["columns"],
        time.perf_counter() - started,
    )


def vacuum_catalogs(dsn: str, database: str) -> None:
    """VACUUM ANALYZE the system catalogs (what autovacuum would do after such growth)."""
    conn = psycopg2.connect(dsn, dbname=database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            tables = ", ".join(f"pg_catalog.{t}" for t in CATALOG_TABLES)
            cur.execute(f"VACUUM (ANALYZE) {tables}")
    finally:
        conn.close()


def catalog_counts(dsn: str, database: str) -> dict[str, int]:
    """Relations by kind and live columns in the non-system schemas of `database`."""
    conn = psycopg2.connect(dsn, dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                """
                SELECT count(*) FILTER (WHERE c.relkind = 'r' AND NOT c.relispartition),
                       count(*) FILTER (WHERE c.relkind = 'p' AND NOT c.relispartition),
                       count(*) FILTER (WHERE c.relispartition),
                       count(*) FILTER (WHERE c.relkind = 'v'),
                       count(*) FILTER (WHERE c.relkind = 'm'),
                       count(*),
                       (SELECT count(*) FROM pg_catalog.pg_namespace n
                         WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
                FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                """
            )
            tables, partitioned, partitions, views, mviews, relations, schemas = cur.fetchone()
            cur.execute(
                """
                SELECT count(*) FROM pg_catalog.pg_attribute a
                JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0
                  AND NOT a.attisdropped
                  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                """
            )
            (columns,) = cur.fetchone()
            cur.execute(
                "SELECT count(*) FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'm') AND c.reltuples > 0 AND n.nspname !~ '^pg_'"
            )
            (analysed,) = cur.fetchone()
            cur.execute("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())")
            (size_bytes,) = cur.fetchone()
    finally:
        conn.close()
    return {
        "schemas": schemas,
        "relations": relations,
        "tables": tables,
        "partitioned_tables": partitioned,
        "partitions": partitions,
        "views": views,
        "materialized_views": mviews,
        "columns": columns,
        "analysed_with_rows": analysed,
        "database_bytes": size_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="libpq DSN of a superuser (no dbname)")
    parser.add_argument("--database", help="database to (re)create (default bench_<size>)")
    parser.add_argument("--size", default="small", choices=list(SIZES))
    parser.add_argument("--schemas", type=int, help="override the size's schema count")
    parser.add_argument("--relations-per-schema", type=int, help="override (multiple of 100)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=2, help="parallel connections (default 2)")
    parser.add_argument("--chunk", type=int, default=250, help="relations per transaction")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    if args.schemas or args.relations_per_schema:
        size = Size(
            args.schemas or size.schemas,
            args.relations_per_schema or size.relations_per_schema,
            size.mean_columns,
        )
    database = args.database or f"bench_{args.size}"
    result = generate(args.dsn, database, size, args.seed, args.jobs, args.chunk)
    counts = catalog_counts(args.dsn, database)
    print(
        f"generated {database} in {result.seconds:.1f}s: "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
