"""Many small databases: the fixed cost per database of one `pg-metadata extract`.

Starts a throwaway server, creates N databases of T tables each (4 columns, a primary key),
runs `pg-metadata extract --quiet` over all of them into a temp folder, and prints one JSON
object a run: wall seconds, seconds per database, exit code, and `cpu_s`, the user + system
time of the CLI and its workers (not the server's backends). Each `--pg-metadata` (another
checkout's command) and each `--jobs` is one run on the same server, `--rounds` times over.
`--again N` extracts N more times into the same folder (a scheduled refresh: each database's
earlier runs are there to be pruned), one JSON object each.

    .venv/bin/python bench/many_databases.py --databases 40 --tables 10
    .venv/bin/python bench/many_databases.py --databases 200 --jobs 1 --jobs 2 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
        "--pg-metadata",
        action="append",
        help="the command to run (another checkout's; repeatable; default this checkout's)",
    )
    parser.add_argument("--jobs", action="append", help="--jobs of each run (repeatable)")
    parser.add_argument("--rounds", type=int, default=1, help="times to repeat every run")
    parser.add_argument(
        "--again", type=int, default=0, help="more extracts of each run into the same folder"
    )
    args = parser.parse_args()
    commands = args.pg_metadata or [PG_METADATA]
    runs = [(c, j) for c in commands for j in (args.jobs or [None])]
    with ThrowawayServer("pgm_admin", "admin-secret") as srv:
        create_databases(srv, args.databases, args.tables)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DAGSTER_HOME"))}
        env.update(
            PGHOST=srv.host,
            PGPORT=str(srv.port),
            PGUSER="pgm_admin",
            PGPASSWORD="admin-secret",
            PGDATABASE="postgres",
            PGSSLMODE="disable",
        )
        for _ in range(args.rounds):
            for command, jobs in runs:
                with tempfile.TemporaryDirectory() as out:
                    for extract in range(1 + args.again):
                        result = {**_run(command, jobs, out, env, args), "extract": extract + 1}
                        print(json.dumps(result), flush=True)


def create_databases(srv: ThrowawayServer, databases: int, tables: int) -> None:
    """`tenant0000`... on the server, each with `tables` tables of 4 columns and a primary key."""
    ddl = "".join(
        f"CREATE TABLE t{i} (id int PRIMARY KEY, a text, b numeric, c date);" for i in range(tables)
    )
    login = {"host": srv.host, "port": srv.port, "user": srv.admin_user}
    login["password"] = srv.admin_password
    admin = psycopg2.connect(**login, dbname="postgres")
    admin.autocommit = True
    for d in range(databases):
        admin.cursor().execute(f"CREATE DATABASE tenant{d:04d}")
        conn = psycopg2.connect(**login, dbname=f"tenant{d:04d}")
        with conn, conn.cursor() as cur:
            cur.execute(ddl)
        conn.close()
    admin.close()


def _run(command: str, jobs: str | None, out: str, env: dict, args: argparse.Namespace) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [
            command,
            "extract",
            "--include",
            '{"tenant.*": "*"}',
            "--output",
            out,
            "--quiet",
            *(["--jobs", jobs] if jobs else []),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CLI and its workers, not the server
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "command": command,
        "jobs": jobs,
        "databases": args.databases,
        "tables_per_database": args.tables,
        "exit": done.returncode,
        "wall_s": round(wall, 2),
        "per_database_s": round(wall / args.databases, 3),
        "cpu_s": round(cpu, 1),
        "cpu_per_database_s": round(cpu / args.databases, 3),
        "stderr_tail": done.stderr[-300:],
    }


if __name__ == "__main__":
    main()
