"""Benchmark: the UI's backfill of every database partition, on a server of many small databases.

    .venv/bin/python bench/ui_backfill.py --databases 200 --tables 10

Starts a throwaway PostgreSQL server with N databases of T tables (as bench/many_databases.py),
a temp DAGSTER_HOME holding pg_metadata/demo/dagster.yaml (the run queue read every second, at
most 4 runs at once, the source's pool at 2 steps at once), and `dagster dev` on the `default`
source (`PG_METADATA_INCLUDE` selects the tenants). Through the webserver's GraphQL API, as the
UI does it: the discovery job is submitted (it registers the partitions), then a backfill of
every partitioned asset for all partitions (`launchPartitionBackfill` with `allPartitions`,
what "Materialize all partitions" sends). Measured from the backfill's submission until its
last run ended: wall time, seconds per database, the runs' statuses, and the medians of each
run's parts (queue: RUN_ENQUEUED -> RUN_STARTING, launch: -> RUN_START, the run worker process
starting Python, Dagster and the code location; executing: -> RUN_SUCCESS). Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.many_databases import create_databases  # noqa: E402
from bench.ui_vs_cli import event_times, fail, instance_yaml, wait_for_run  # noqa: E402
from pg_metadata.cli.demo import (  # noqa: E402
    StopSignals,
    hermetic_env,
    start_ui,
    stop_ui,
    wait_until_ready,
)
from pg_metadata.demo.throwaway import ThrowawayServer  # noqa: E402

BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
TIMEOUT_S = 3600


def partitioned_asset_keys(env: dict[str, str]) -> list[list[str]]:
    """The asset keys a backfill of the `default` source's database partitions selects."""
    from pg_metadata.catalog.sources import Source
    from pg_metadata.orchestration.definitions import build_definitions

    defs = build_definitions([Source.from_env(env)], target=env["PG_METADATA_OUTPUT"])
    return [
        list(spec.key.path)
        for spec in defs.resolve_all_asset_specs()
        if spec.partitions_def is not None
    ]


def graphql(port: int, query: str, variables: dict) -> dict:
    import urllib.request

    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=40)
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument("--port", type=int, default=3401, help="UI port (3401)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pg_metadata_bench_backfill_"))
    print(f"temp folder: {tmp}", file=sys.stderr)
    try:
        with ThrowawayServer("pgm_admin", "admin-secret") as srv:
            create_databases(srv, args.databases, args.tables)
            home = tmp / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text(instance_yaml(None))
            env = hermetic_env(
                {
                    "PGHOST": srv.host,
                    "PGPORT": str(srv.port),
                    "PGUSER": "pgm_admin",
                    "PGPASSWORD": "admin-secret",
                    "PGDATABASE": "postgres",
                    "PGSSLMODE": "disable",
                    "PG_METADATA_INCLUDE": '{"tenant.*": "*"}',
                    "PG_METADATA_OUTPUT": str(tmp / "out"),
                    "DAGSTER_HOME": str(home),
                }
            )
            os.environ["DAGSTER_HOME"] = str(home)
            result = measure(env, args, tmp / "dagster_dev.log")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    return 0


def measure(env: dict[str, str], args: argparse.Namespace, log: Path) -> dict:
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster_graphql import DagsterGraphQLClient

    keys = partitioned_asset_keys(env)
    with log.open("w") as log_file:
        ui = start_ui(env, args.port, verbose=True, stdout=log_file.fileno())
    try:
        if not wait_until_ready(ui, args.port):
            fail(f"dagster dev exited ({ui.returncode})", log)
        instance = dg.DagsterInstance.get()
        client = DagsterGraphQLClient("127.0.0.1", port_number=args.port, timeout=120)
        discovery = client.submit_job_execution("default__discover_databases")
        if wait_for_run(instance, discovery).dagster_run.status != dg.DagsterRunStatus.SUCCESS:
            fail(f"discovery run {discovery} failed", log)
        submitted = time.time()
        params = {"allPartitions": True, "assetSelection": [{"path": k} for k in keys]}
        answer = graphql(args.port, BACKFILL, {"params": params})["data"]
        launched = answer["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            fail(f"backfill not launched: {launched}", log)
        backfill_id = launched["backfillId"]
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            backfill = instance.get_backfill(backfill_id)
            if backfill is not None and backfill.status != BulkActionStatus.REQUESTED:
                break
            time.sleep(0.5)
        if backfill is not None and backfill.error is not None:
            fail(f"backfill {backfill.status.value}: {backfill.error.to_string()[-3000:]}", log)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        while any(not r.is_finished for r in runs) and time.monotonic() < deadline:
            time.sleep(0.5)
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        records = [instance.get_run_record_by_id(r.run_id) for r in runs]
        ended = max((r.end_time or 0) for r in records) if records else time.time()
        parts = [event_times(instance, r.run_id) for r in runs]
        statuses: dict[str, int] = {}
        for r in runs:
            statuses[r.status.value] = statuses.get(r.status.value, 0) + 1

        def median(a: str, b: str) -> float | None:
            gaps = [p[b] - p[a] for p in parts if a in p and b in p]
            return round(statistics.median(gaps), 2) if gaps else None

        wall = ended - submitted
        return {
            "databases": args.databases,
            "tables_per_database": args.tables,
            "backfill_status": backfill.status.value if backfill else None,
            "runs": statuses,
            "wall_s": round(wall, 1),
            "per_database_s": round(wall / args.databases, 2),
            "run_median_s": {
                "queue": median("RUN_ENQUEUED", "RUN_STARTING"),
                "launch": median("RUN_STARTING", "RUN_START"),
                "executing": median("RUN_START", "RUN_SUCCESS"),
            },
        }
    finally:
        stop_ui(ui, StopSignals())


if __name__ == "__main__":
    sys.exit(main())
