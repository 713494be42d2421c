"""Benchmark: a run launched from the Dagster UI vs the headless CLI, on one small database.

    .venv/bin/python bench/ui_vs_cli.py                       # 3 measured repeats, ~4 min
    .venv/bin/python bench/ui_vs_cli.py --repeat 5 --json /tmp/ui_vs_cli.json
    .venv/bin/python bench/ui_vs_cli.py --dequeue-interval 5  # Dagster's default run queue tick

Needs the PostgreSQL server binaries (apt-get install postgresql) and a free loopback port for
the UI (--port, default 3400). Everything is started and removed by the script: a throwaway
PostgreSQL server with the demo catalog (database `demo_shop`, as `pg-metadata demo`), temp
output folders, and a temp DAGSTER_HOME holding pg_metadata/demo/dagster.yaml, as
`pg-metadata demo --serve` makes it. Run it on an otherwise idle machine.

Measured, each --repeat times after one warm-up that is not counted (--no-warmup):

- cli: `pg-metadata extract` of the demo server, wall time from process start to exit
  (Python and Dagster start-up, discovery of the databases, the extraction, the summary).
- ui in_process: `dagster dev` on the same server, with the command line of `pg-metadata demo
  --serve`; the job `default__extract_database` submitted for partition `demo_shop` through
  the webserver's GraphQL API as the UI does it (DagsterGraphQLClient.submit_job_execution);
  wall time from submission until the instance says SUCCESS (polled every 50 ms). The run's
  events split it: "submit" (the GraphQL mutation, until RUN_ENQUEUED), "queue" (-> RUN_STARTING:
  waiting for the daemon's run-queue tick, every `dequeue_interval_seconds`: 1 s in the demo
  instance yaml, Dagster's default is 5 s),
  "launch" (-> RUN_START: the run worker process starting Python, Dagster and the code
  location) and "executing" (-> RUN_SUCCESS: the steps). Before each submission the script
  waits a random 0 s to one tick (seeded), as a user's click is not in step with the daemon:
  back-to-back submissions would otherwise always land at the same point of the tick.
- ui multiprocess: the same with PG_METADATA_EXECUTOR=multiprocess (the old default: every
  step in a process of its own), in a second `dagster dev`.

Prints Markdown tables: median, min and max in seconds, the UI/CLI ratio of the medians, and
the medians of the UI runs' parts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pg_metadata.cli.demo import (  # noqa: E402
    DEMO_DATABASE,
    DEMO_PASSWORD,
    DEMO_USER,
    StopSignals,
    demo_env,
    hermetic_env,
    load_demo_catalog,
    start_ui,
    stop_ui,
    wait_until_ready,
)
from pg_metadata.demo.throwaway import ThrowawayServer  # noqa: E402

BIN = Path(sys.executable).parent
JOB = "default__extract_database"
RUN_TIMEOUT_S = 600
DEFAULT_DEQUEUE_INTERVAL_S = 5  # QueuedRunCoordinator's default
MODES = ("cli", "in_process", "multiprocess")
LABELS = {
    "cli": "CLI `pg-metadata extract` (process start to exit)",
    "in_process": "UI run, in_process executor (default; submit to success)",
    "multiprocess": "UI run, multiprocess executor (old default; submit to success)",
}
PARTS = ("submit", "queue", "launch", "executing")


def measure_cli(env: dict[str, str], n: int) -> list[dict[str, float]]:
    """Wall times of `pg-metadata extract`."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(BIN / "pg-metadata"), "extract", "--retries", "0"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"pg-metadata extract failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        times.append({"wall": wall})
    return times


def measure_ui(
    env: dict[str, str], executor: str, port: int, n: int, log: Path, tick: float
) -> list[dict[str, float]]:
    """UI-launched runs on a `dagster dev` whose code location uses the given executor."""
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    env = {**env, "PG_METADATA_EXECUTOR": executor}
    rng = random.Random(0)
    with log.open("w") as log_file:
        ui = start_ui(env, port, verbose=True, stdout=log_file.fileno())
    try:
        t0 = time.perf_counter()
        if not wait_until_ready(ui, port):
            fail(f"dagster dev exited ({ui.returncode})", log)
        print(f"  dagster dev ({executor}) ready in {time.perf_counter() - t0:.1f} s", flush=True)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=120)
        instance = dg.DagsterInstance.get()  # DAGSTER_HOME is the UI's
        results = []
        for _ in range(n):
            time.sleep(rng.uniform(0, tick))
            submitted_at = time.time()
            t0 = time.perf_counter()
            run_id = client.submit_job_execution(JOB, tags={"dagster/partition": DEMO_DATABASE})
            record = wait_for_run(instance, run_id)
            wall = time.perf_counter() - t0
            status = record.dagster_run.status
            if status != dg.DagsterRunStatus.SUCCESS:
                fail(f"run {run_id} ended {status.value}", log)
            at = event_times(instance, run_id)
            results.append(
                {
                    "wall": wall,
                    "submit": at["RUN_ENQUEUED"] - submitted_at,
                    "queue": at["RUN_STARTING"] - at["RUN_ENQUEUED"],
                    "launch": at["RUN_START"] - at["RUN_STARTING"],
                    "executing": at["RUN_SUCCESS"] - at["RUN_START"],
                }
            )
        return results
    finally:
        stop_ui(ui, StopSignals())


def event_times(instance, run_id: str) -> dict[str, float]:
    """Timestamp of the first event of each run-level type of a run."""
    times: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is not None:
            times.setdefault(entry.dagster_event.event_type.name, entry.timestamp)  # RUN_START
    return times


def fail(message: str, log: Path) -> None:
    """Exit with the message and the end of dagster dev's log (the temp dir is removed)."""
    tail = log.read_text(errors="replace").splitlines()[-60:] if log.exists() else []
    sys.exit("\n".join([*tail, f"error: {message}"]))


def wait_for_run(instance, run_id: str):
    """The run's record once it has ended."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        record = instance.get_run_record_by_id(run_id)
        if record is not None and record.dagster_run.is_finished and record.end_time:
            return record
        time.sleep(0.05)
    sys.exit(f"run {run_id} did not end within {RUN_TIMEOUT_S} s")


def demo_instance() -> dict:
    """pg_metadata/demo/dagster.yaml, parsed."""
    import yaml

    return yaml.safe_load((resources.files("pg_metadata.demo") / "dagster.yaml").read_text("utf-8"))


def default_tick() -> float:
    """The run-queue tick of the demo instance (QueuedRunCoordinator's default is 5 s)."""
    config = (demo_instance().get("run_coordinator") or {}).get("config") or {}
    return config.get("dequeue_interval_seconds", DEFAULT_DEQUEUE_INTERVAL_S)


def instance_yaml(dequeue_interval: int | None) -> str:
    """pg_metadata/demo/dagster.yaml, optionally with another run-queue tick."""
    import yaml

    doc = demo_instance()
    if dequeue_interval is not None:
        doc["run_coordinator"] = {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": dequeue_interval},
        }
    return yaml.safe_dump(doc)


def print_tables(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    med = {
        m: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for m, rows in results.items()
    }
    cli = med.get("cli", {}).get("wall")
    after = ", no warm-up" if args.no_warmup else " after one warm-up"
    tick = args.dequeue_interval or default_tick()
    print(f"\n{platform.node()}, {os.cpu_count()} CPUs, {datetime.now():%Y-%m-%d %H:%M}, ", end="")
    print(f"Python {platform.python_version()}, {args.repeat} measured repeats{after}, ", end="")
    print(f"run queue tick {tick} s\n")
    print("| measurement | median (s) | min (s) | max (s) | median / CLI median |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode, rows in results.items():
        walls = [r["wall"] for r in rows]
        ratio = f"{med[mode]['wall'] / cli:.2f}x" if cli else "-"
        print(
            f"| {LABELS[mode]} | {med[mode]['wall']:.2f} | {min(walls):.2f} | {max(walls):.2f} "
            f"| {ratio} |"
        )
    ui_modes = [m for m in results if m != "cli"]
    if not ui_modes:
        return
    print("\nUI runs, medians of their parts (s):\n")
    print(
        "| executor | submit: to RUN_ENQUEUED | queue: to RUN_STARTING | launch: to RUN_START "
        "| executing: to RUN_SUCCESS | wall | (launch + executing) / CLI |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ui_modes:
        m = med[mode]
        ratio = f"{(m['launch'] + m['executing']) / cli:.2f}x" if cli else "-"
        cells = " | ".join(f"{m[k]:.2f}" for k in (*PARTS, "wall"))
        print(f"| {mode} | {cells} | {ratio} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured repeats of each (3)")
    parser.add_argument("--port", type=int, default=3400, help="UI port (3400)")
    parser.add_argument("--no-warmup", action="store_true", help="count the first run too")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--dequeue-interval",
        type=int,
        metavar="S",
        help="set the run queue's dequeue_interval_seconds (default: the demo yaml's, 1 s)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw times to this file")
    args = parser.parse_args()
    n = args.repeat + (0 if args.no_warmup else 1)
    tick = args.dequeue_interval or default_tick()

    tmp = Path(tempfile.mkdtemp(prefix="pg_metadata_bench_ui_"))
    results: dict[str, list[dict[str, float]]] = {}
    print("starting a throwaway PostgreSQL server with the demo catalog...", flush=True)
    with ThrowawayServer(admin_user=DEMO_USER, admin_password=DEMO_PASSWORD) as server:
        try:
            load_demo_catalog(server.host, server.port)
            env = hermetic_env(demo_env(server.host, server.port))  # DAGSTER_HOME unset
            env["PG_METADATA_OUTPUT"] = str(tmp / "out")
            if "cli" in args.modes:
                print(f"cli: {n} x pg-metadata extract", flush=True)
                results["cli"] = measure_cli(env, n)
            home = tmp / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text(instance_yaml(args.dequeue_interval))
            env["DAGSTER_HOME"] = os.environ["DAGSTER_HOME"] = str(home)
            # registers the partition in the UI's instance, as `pg-metadata demo --serve` does
            measure_cli(env, 1)
            for mode in ("in_process", "multiprocess"):
                if mode in args.modes:
                    print(f"ui {mode}: {n} x launch through GraphQL", flush=True)
                    log = tmp / f"dagster_dev_{mode}.log"
                    results[mode] = measure_ui(env, mode, args.port, n, log, tick)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.no_warmup:
        results = {mode: rows[1:] for mode, rows in results.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print_tables(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
