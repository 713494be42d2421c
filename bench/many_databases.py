"""Many small databases: the fixed cost per database of one `pg-metadata extract`.

Starts a throwaway server, creates N databases of T tables each (4 columns, a primary key),
runs `pg-metadata extract --quiet` over all of them into a temp folder, and prints one JSON
object: wall seconds, seconds per database, exit code.

    .venv/bin/python bench/many_databases.py --databases 40 --tables 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from pg_metadata.demo.throwaway import ThrowawayServer

PG_METADATA = str(Path(sys.executable).with_name("pg-metadata"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=40)
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument(
        "--pg-metadata", default=PG_METADATA, help="the command to run (another checkout's)"
    )
    args = parser.parse_args()
    ddl = "".join(
        f"CREATE TABLE t{i} (id int PRIMARY KEY, a text, b numeric, c date);"
        for i in range(args.tables)
    )
    with ThrowawayServer("pgm_admin", "admin-secret") as srv, tempfile.TemporaryDirectory() as out:
        login = {"host": srv.host, "port": srv.port, "user": srv.admin_user}
        login["password"] = srv.admin_password
        admin = psycopg2.connect(**login, dbname="postgres")
        admin.autocommit = True
        for d in range(args.databases):
            admin.cursor().execute(f"CREATE DATABASE tenant{d:04d}")
            conn = psycopg2.connect(**login, dbname=f"tenant{d:04d}")
            with conn, conn.cursor() as cur:
                cur.execute(ddl)
            conn.close()
        admin.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DAGSTER_HOME"))}
        env.update(
            PGHOST=srv.host,
            PGPORT=str(srv.port),
            PGUSER="pgm_admin",
            PGPASSWORD="admin-secret",
            PGDATABASE="postgres",
            PGSSLMODE="disable",
        )
        started = time.monotonic()
        done = subprocess.run(
            [
                args.pg_metadata,
                "extract",
                "--include",
                '{"tenant.*": "*"}',
                "--output",
                out,
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
    print(
        json.dumps(
            {
                "databases": args.databases,
                "tables_per_database": args.tables,
                "exit": done.returncode,
                "wall_s": round(wall, 2),
                "per_database_s": round(wall / args.databases, 3),
                "stderr_tail": done.stderr[-300:],
            }
        )
    )


if __name__ == "__main__":
    main()
