"""`pg-metadata demo`: the built-in default, a throwaway server with a small shop catalog.

Without options it extracts the demo catalog headless; with `--serve` it keeps the server
running, registers its databases and starts the Dagster UI on it, so materializing from the UI
works on a machine with no PostgreSQL of its own. Ctrl-C stops the UI and removes the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

DEMO_USER = DEMO_PASSWORD = "demo"  # the throwaway server's own credentials
DEMO_DATABASE = "demo_shop"


def demo(args: argparse.Namespace) -> int:
    """Extract the demo catalog, or serve it in the Dagster UI with --serve."""
    from pg_metadata.demo.throwaway import ThrowawayServer

    print("pg-metadata: starting a throwaway PostgreSQL server with the demo catalog...")
    with ThrowawayServer(admin_user=DEMO_USER, admin_password=DEMO_PASSWORD) as server:
        load_demo_catalog(server.host, server.port)
        env = demo_env(server.host, server.port)
        if args.serve:
            return serve(env, args.output, args.port)
        os.environ.update(env)
        from pg_metadata.cli.extract import extract
        from pg_metadata.cli.main import build_parser

        extract_args = ["extract", "--retries", "0"]
        extract_args += ["--output", args.output] if args.output else []
        extract_args += ["--verbose"] if args.verbose else []
        return extract(build_parser().parse_args(extract_args))


def load_demo_catalog(host: str, port: int) -> None:
    """Create the demo database and its schemas, tables, partitions and views."""
    import psycopg2

    script = resources.files("pg_metadata.demo").joinpath("shop.sql").read_text("utf-8")
    kwargs = {"host": host, "port": port, "user": DEMO_USER, "password": DEMO_PASSWORD}
    for dbname, sql in (("postgres", f"CREATE DATABASE {DEMO_DATABASE}"), (DEMO_DATABASE, script)):
        conn = psycopg2.connect(dbname=dbname, **kwargs)
        try:
            conn.autocommit = True
            conn.cursor().execute(sql)
        finally:
            conn.close()


def demo_env(host: str, port: int) -> dict[str, str]:
    """The variables that make the demo server the `default` source."""
    return {
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": DEMO_USER,
        "PGPASSWORD": DEMO_PASSWORD,  # the throwaway server's own, throwaway password
        "PGDATABASE": "postgres",
        "PGSSLMODE": "disable",
        "PG_METADATA_INCLUDE": f'{{"^{DEMO_DATABASE}$": "*"}}',
        "PG_METADATA_RETRIES": "0",
        "ATLAN_CONNECTION_NAME": "demo",
    }


def serve(env: dict[str, str], output: str | None, port: int) -> int:
    """Register the demo databases, then run the Dagster UI on them until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="pg_metadata_demo_home_") as home:
        run_env = {**os.environ, **env, "DAGSTER_HOME": home}
        run_env.pop("PG_METADATA_SOURCES", None)
        if output:
            run_env["PG_METADATA_OUTPUT"] = output
        (Path(home) / "dagster.yaml").write_text(
            (resources.files("pg_metadata.demo") / "dagster.yaml").read_text("utf-8")
        )
        # Extract once first: the UI opens on a registered partition and a complete output.
        subprocess.run(
            [sys.executable, "-m", "pg_metadata.cli.main", "extract", "--retries", "0"],
            env=run_env,
            check=False,
            stdout=subprocess.DEVNULL,
        )
        print(
            f"pg-metadata: Dagster UI on http://127.0.0.1:{port} (source 'default', database "
            f"{DEMO_DATABASE!r}); Ctrl-C stops the UI and the server"
        )
        ui = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-m",
                "pg_metadata.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=run_env,
            start_new_session=True,
        )
        try:
            return ui.wait()
        except KeyboardInterrupt:
            os.killpg(ui.pid, signal.SIGINT)
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)
                ui.wait()
            print("pg-metadata: stopped the UI and the demo server")
            return 0
