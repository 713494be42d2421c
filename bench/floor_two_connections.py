"""The two-connection floor: the server's own cost of our catalog read as pg-metadata runs it.

Two sessions in one exported snapshot, in parallel, with our session settings: the second
imports the snapshot and copies what the extractor runs there (`HELPER_QUERIES`: columns),
then reads the view definitions in their short transactions; the first copies the rest
(schemas, tables, procedures, foreign keys, lineage; the fingerprint with `--fingerprint`,
which the extractor reads only into a persistent Dagster instance, not for `pg-metadata
extract` without DAGSTER_HOME, the run the benchmark measures), as the extractor does.
Every COPY goes to a sink that counts bytes and keeps nothing, so the time is the server's plus
libpq's. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time

import psycopg2

from pg_metadata.catalog import datasets, reader
from pg_metadata.catalog.connection import apply_session_timeouts
from pg_metadata.catalog.filters import CatalogFilter
from pg_metadata.catalog.settings import ConnectionSettings
from pg_metadata.orchestration.assets import HELPER_QUERIES


class Sink(io.RawIOBase):
    """Counts what it is given."""

    size = 0

    def write(self, b) -> int:  # type: ignore[override]
        self.size += len(b)
        return len(b)


def copy(cur, dataset, params, seconds: dict[str, float]) -> int:
    query = cur.mogrify(dataset.sql(), params).decode("utf-8")
    sink, started = Sink(), time.perf_counter()
    cur.copy_expert(
        f"COPY (\n{query}\n) TO STDOUT WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')",
        sink,
        size=1 << 20,
    )
    seconds[dataset.name] = round(time.perf_counter() - started, 3)
    return sink.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--fingerprint", action="store_true", help="also the fingerprint query")
    args = parser.parse_args()
    settings = ConnectionSettings(application_name="bench_floor2")
    params = {**CatalogFilter().sql_params(), "exact_sizes": False}

    def connect():
        conn = psycopg2.connect(
            args.dsn, dbname=args.database, application_name=settings.application_name,
            options=settings.session_options(),
        )  # fmt: skip
        conn.autocommit = True
        apply_session_timeouts(conn, settings)
        conn.autocommit = False
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        return conn

    main_conn, helper = connect(), connect()
    seconds: dict[str, float] = {}
    sizes: dict[str, int] = {}
    helper_sets = [d for d in datasets.PER_DATABASE if d in HELPER_QUERIES]
    extra = [datasets.FINGERPRINT] if args.fingerprint else []
    main_sets = [d for d in (*datasets.PER_DATABASE, *extra) if d not in helper_sets]
    started = time.perf_counter()
    with main_conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_export_snapshot()")
        (snapshot,) = cur.fetchone()

        def second() -> None:
            with helper.cursor() as hcur:
                hcur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
                for d in helper_sets:
                    sizes[d.name] = copy(hcur, d, params, seconds)
            helper.commit()
            t = time.perf_counter()
            reader.read_view_definitions(helper, snapshot, params, args.database)
            seconds["view_definitions"] = round(time.perf_counter() - t, 3)

        thread = threading.Thread(target=second)
        thread.start()
        for d in main_sets:
            sizes[d.name] = copy(cur, d, params, seconds)
        thread.join()
    main_conn.commit()
    wall = time.perf_counter() - started
    print(json.dumps({"seconds": round(wall, 3), "query_seconds": seconds, "bytes": sizes}))


if __name__ == "__main__":
    main()
