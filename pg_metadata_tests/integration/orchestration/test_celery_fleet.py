"""A fleet extraction on Dagster's real distributed machinery: dagster-celery workers, a Redis
broker, a shared Dagster instance, and two PostgreSQL servers with per-source connection caps.

The test starts everything itself on loopback: redis-server, two `dagster-celery worker start`
workers (two processes each), one `dagster job execute` process per run. Every run uses the
celery executor (PG_METADATA_EXECUTOR=celery), so each step is a celery task executed in a
worker process; the run processes only orchestrate, and claim a slot of the source's pool
before they submit a step that connects to the source. While all extraction runs of both
sources go at once, a thread samples pg_stat_activity on both servers and records the peak
sessions per source, which must never exceed the source's `max_connections`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from psycopg2 import sql as pgsql

from pg_metadata.orchestration.plan import SOURCE_TAG
from pg_metadata.output.storage import encode_segment
from pg_metadata_tests.conftest import PgCluster

pytestmark = pytest.mark.integration

PREFIX = "pgm_fleet_"
SHARED_DB = f"{PREFIX}shared"  # the same database name on both servers
APP_NAME = "pg_metadata"  # application_name of every pg_metadata session
WORKERS = 2  # celery worker nodes ...
WORKER_PROCESSES = 2  # ... with this many task processes each (4 steps at once in all)
PROCESS_TIMEOUT_S = 240
POLL_INTERVAL_S = 0.02
DEFINITIONS_MODULE = "pg_metadata.definitions"
CATALOG_STEP = "{source}__raw_catalog"  # the only extraction step that connects to the source
CELERY_STEP_MESSAGE = "in celery worker"  # engine event the celery task records for each step
BIN = Path(sys.executable).parent
TASK_SUCCEEDED = re.compile(r"Task execute_plan\[[0-9a-f-]+\] succeeded in")


@dataclass(frozen=True)
class Layout:
    """What one test database holds: `schemas` schemas of `tables` tables and `views` views."""

    schemas: int
    tables: int
    views: int

    @property
    def table_count(self) -> int:
        return self.schemas * self.tables

    @property
    def view_count(self) -> int:
        return self.schemas * self.views

    @property
    def column_count(self) -> int:
        return self.table_count * 3 + self.view_count * 2

    def script(self) -> str:
        """SQL creating the objects (no `public` schema, so the counts are exact)."""
        lines = ["DROP SCHEMA public CASCADE;"]
        for s in range(self.schemas):
            lines.append(f"CREATE SCHEMA s{s};")
            for t in range(self.tables):
                lines.append(
                    f"CREATE TABLE s{s}.t{t} (id int PRIMARY KEY, name text, at timestamptz);"
                )
            for v in range(self.views):
                lines.append(f"CREATE VIEW s{s}.v{v} AS SELECT id, name FROM s{s}.t0;")
        return "\n".join(lines)


@dataclass(frozen=True)
class FleetSource:
    """One source of the fleet: its server, login role, databases and connection cap."""

    name: str
    cluster: PgCluster
    role: str
    password: str
    connection_qn: str
    max_connections: int
    query_connections: int
    databases: dict[str, Layout]

    @property
    def password_env(self) -> str:
        return f"PGM_FLEET_{self.name.upper()}_PASSWORD"

    @property
    def pool(self) -> str:
        return f"pg_metadata/{self.name}"

    @property
    def pool_slots(self) -> int:
        per_database = min(self.query_connections, self.max_connections)
        return self.max_connections // per_database

    def entry(self) -> dict:
        """Its entry in the sources file (the password stays in the environment)."""
        return {
            "name": self.name,
            "host": self.cluster.host,
            "port": self.cluster.port,
            "user": self.role,
            "password_env": self.password_env,
            "database": "postgres",
            "sslmode": "disable",
            "include": {f"^{PREFIX}.*$": "*"},
            "connection_qualified_name": self.connection_qn,
            "max_connections": self.max_connections,
            "query_connections": self.query_connections,
            "retries": 1,
        }


def _fleet(pg_cluster: PgCluster, pg_cluster2: PgCluster) -> list[FleetSource]:
    # alpha: 2 sessions per database, cap 2 -> 1 pool slot (6 sessions if its 3 ran at once)
    # beta: 1 session per database, cap 2 -> 2 pool slots (3 sessions if its 3 ran at once)
    return [
        FleetSource(
            name="alpha",
            cluster=pg_cluster,
            role=f"{PREFIX}alpha",
            password=secrets.token_hex(12),
            connection_qn="default/postgres/1717000101",
            max_connections=2,
            query_connections=2,
            databases={
                f"{PREFIX}a1": Layout(2, 2, 1),
                f"{PREFIX}a2": Layout(2, 3, 1),
                SHARED_DB: Layout(1, 2, 0),
            },
        ),
        FleetSource(
            name="beta",
            cluster=pg_cluster2,
            role=f"{PREFIX}beta",
            password=secrets.token_hex(12),
            connection_qn="default/postgres/1717000202",
            max_connections=2,
            query_connections=1,
            databases={
                f"{PREFIX}b1": Layout(2, 2, 1),
                f"{PREFIX}b2": Layout(3, 2, 1),
                SHARED_DB: Layout(2, 4, 2),
            },
        ),
    ]


def _drop(source: FleetSource) -> None:
    for db in source.databases:
        source.cluster.drop_database(db)
    source.cluster.execute(
        pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(source.role))
    )


def _create(source: FleetSource) -> None:
    cluster, role = source.cluster, pgsql.Identifier(source.role)
    cluster.execute(
        pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(role), params=(source.password,)
    )
    for db, layout in source.databases.items():
        cluster.create_database(db, layout.script())
        name = pgsql.Identifier(db)
        cluster.execute(pgsql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        cluster.execute(pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(name, role))


@pytest.fixture
def fleet(pg_cluster: PgCluster, pg_cluster2: PgCluster) -> Iterator[list[FleetSource]]:
    """Both sources' databases and login roles, dropped again afterwards."""
    sources = _fleet(pg_cluster, pg_cluster2)
    for source in sources:
        _drop(source)  # leftovers of an interrupted session
    try:
        for source in sources:
            _create(source)
        yield sources
    finally:
        for source in sources:
            _drop(source)


# --- processes ------------------------------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _stop_group(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the process group, wait for every member, then SIGKILL what is left."""
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        if not _group_alive(pgid) and proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            if proc.poll() is not None and not _group_alive(pgid):
                return
    raise AssertionError(f"process group {pgid} ({proc.args[:4]}) survived SIGKILL")


class Processes:
    """Subprocesses in their own process groups, each logging to a file; stopped on exit."""

    def __init__(self, logs: Path, env: dict[str, str], cwd: Path) -> None:
        self.logs, self.env, self.cwd = logs, env, cwd
        self.procs: list[subprocess.Popen] = []
        logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, label: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.logs / f"{label}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc, log

    def stop_all(self) -> None:
        errors = []
        for proc in reversed(self.procs):
            try:
                _stop_group(proc)
            except AssertionError as exc:
                errors.append(str(exc))
        assert not errors, errors


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text("utf-8", errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_all(runs: dict[str, tuple[subprocess.Popen, Path]], timeout_s: float) -> None:
    """Wait for every process; fail naming the first that failed, with its log."""
    deadline = time.monotonic() + timeout_s
    for label, (proc, log) in runs.items():
        try:
            rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{label} still running after {timeout_s}s:\n{_tail(log)}")
        assert rc == 0, f"{label} exited with {rc}:\n{_tail(log)}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server on a loopback port, without persistence."""
    import redis

    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        pytest.fail("redis-server not found: apt-get install redis-server", pytrace=False)
    folder = tmp_path / "redis"
    folder.mkdir()
    port = _free_port()
    with (folder / "redis.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start:\n{_tail(folder / 'redis.log')}")
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop_group(proc, grace_s=5)


# --- sampling pg_stat_activity ----------------------------------------------------------------


class SessionPoller(threading.Thread):
    """Samples each source's pg_metadata sessions on its server until stopped."""

    QUERY = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND usename = %s"

    def __init__(self, sources: list[FleetSource]) -> None:
        super().__init__(name="pg_stat_activity poller", daemon=True)
        self.sources = sources
        self.peak: dict[str, int] = dict.fromkeys((s.name for s in sources), 0)
        self.busy_samples: Counter[str] = Counter()
        self.samples = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            conns = {s.name: s.cluster.connect() for s in self.sources}  # app pg_metadata_tests
            try:
                while not self._halt.is_set():
                    for s in self.sources:
                        with conns[s.name].cursor() as cur:
                            cur.execute(self.QUERY, (APP_NAME, s.role))
                            (n,) = cur.fetchone()
                        self.peak[s.name] = max(self.peak[s.name], n)
                        self.busy_samples[s.name] += n > 0
                    self.samples += 1
                    self._halt.wait(POLL_INTERVAL_S)
            finally:
                for conn in conns.values():
                    conn.close()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)


# --- reading what Dagster recorded --------------------------------------------------------------


def _events(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    return [e for e in instance.all_logs(run_id) if e.dagster_event is not None]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = current = 0
    for _, delta in points:  # ends sort before starts at the same instant
        current += delta
        peak = max(peak, current)
    return peak


@dataclass
class RunFacts:
    """What one extraction run's event log says about where and when its steps ran."""

    run_id: str
    database: str
    succeeded_steps: set[str]
    celery_steps: dict[str, str]  # step key -> celery worker hostname
    catalog_interval: tuple[float, float]  # STEP_START .. STEP_SUCCESS of the catalog step
    run_start: float
    catalog_submitted: float  # when the run process handed the catalog step to celery


def _run_facts(instance: dg.DagsterInstance, run: dg.DagsterRun, source: str) -> RunFacts:
    catalog = CATALOG_STEP.format(source=source)
    succeeded, celery = set(), {}
    start = end = submitted = run_start = None
    for entry in _events(instance, run.run_id):
        event = entry.get_dagster_event()
        kind = event.event_type
        if kind == dg.DagsterEventType.RUN_START:
            run_start = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            succeeded.add(event.step_key)
            if event.step_key == catalog:
                end = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_START and event.step_key == catalog:
            start = entry.timestamp
        elif kind == dg.DagsterEventType.ENGINE_EVENT and event.step_key:
            message = entry.message or ""
            if CELERY_STEP_MESSAGE in message:
                worker = event.engine_event_data.metadata.get("Celery worker")
                celery[event.step_key] = str(worker.value if worker is not None else "")
            elif message.startswith("Submitting celery task") and event.step_key == catalog:
                submitted = entry.timestamp
    assert None not in (start, end, submitted, run_start), f"{run.run_id}: catalog step events"
    return RunFacts(
        run_id=run.run_id,
        database=run.tags["dagster/partition"],
        succeeded_steps=succeeded,
        celery_steps=celery,
        catalog_interval=(start, end),
        run_start=run_start,
        catalog_submitted=submitted,
    )


def _manifest(target: Path, source: str, database: str) -> dict:
    path = target / source / "latest" / f"{encode_segment(database)}.json"
    assert path.exists(), f"no complete output for {source}/{database}: {path} is missing"
    return json.loads(path.read_text("utf-8"))


def _qualified_names(manifest: dict) -> list[str]:
    names = []
    for file in manifest["files"]:
        if file["path"].startswith("atlan/"):
            uri = file["uri"]
            local = Path(uri[7:] if uri.startswith("file://") else uri)
            for line in local.read_text("utf-8").splitlines():
                names.append(json.loads(line)["attributes"]["qualifiedName"])
    return names


# --- the test ---------------------------------------------------------------------------------


def _environment(
    home: Path, sources_file: Path, target: Path, broker: str, fleet: list[FleetSource]
) -> dict[str, str]:
    """The environment of workers and run processes: the same instance, sources and broker."""
    dropped = ("PG", "ATLAN_", "CELERY_", "DAGSTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # dagster-celery runs `celery`
        DAGSTER_HOME=str(home),
        PG_METADATA_SOURCES=str(sources_file),
        PG_METADATA_OUTPUT=str(target),
        PG_METADATA_EXECUTOR="celery",
        CELERY_BROKER_URL=broker,
        PYTHONUNBUFFERED="1",
    )
    for source in fleet:
        env[source.password_env] = source.password
    return env


def _execute(job: str, tags: dict[str, str] | None = None) -> list[str]:
    args = [str(BIN / "dagster"), "job", "execute", "-m", DEFINITIONS_MODULE, "-j", job]
    return args + (["--tags", json.dumps(tags)] if tags else [])


def _start_workers(procs: Processes, celery_yaml: Path) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for i in range(1, WORKERS + 1):
        args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
        args += ["-y", str(celery_yaml), "-n", f"fleet{i}", "-i", DEFINITIONS_MODULE]
        args += ["-l", "INFO", "--", f"--concurrency={WORKER_PROCESSES}", "--pool=prefork"]
        args += ["--without-gossip", "--without-mingle"]
        workers.append(procs.spawn(f"worker{i}", args))
    return workers


def _wait_ready(workers: list[tuple[subprocess.Popen, Path]], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    for proc, log in workers:
        while " ready." not in log.read_text("utf-8", errors="replace"):
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready after {timeout_s}s:\n{_tail(log)}")
            time.sleep(0.1)


def test_fleet_extraction_on_celery_workers_keeps_every_connection_cap(
    fleet: list[FleetSource], redis_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    home, target = tmp_path / "dagster_home", tmp_path / "out"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {"telemetry": {"enabled": False}, "concurrency": {"pools": {"granularity": "op"}}}
        )
    )
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(yaml.safe_dump({"sources": [s.entry() for s in fleet]}))
    celery_yaml = tmp_path / "celery.yaml"
    broker = {"env": "CELERY_BROKER_URL"}
    celery_yaml.write_text(
        yaml.safe_dump({"execution": {"config": {"broker": broker, "backend": broker}}})
    )
    env = _environment(home, sources_file, target, redis_url, fleet)

    # Create the sqlite storage once here, so the processes never race to create it.
    instance = dg.DagsterInstance.from_config(str(home))
    procs = Processes(tmp_path / "logs", env, Path(__file__).resolve().parents[3])
    poller = SessionPoller(fleet)
    try:
        assert instance.event_log_storage.supports_global_concurrency_limits
        workers = _start_workers(procs, celery_yaml)

        # Discovery (also on the workers): one partition per database and the pool limits.
        discover = {
            f"{s.name} discovery": procs.spawn(
                f"{s.name}_discover", _execute(f"{s.name}__discover_databases")
            )
            for s in fleet
        }
        _wait_ready(workers)
        _wait_all(discover, PROCESS_TIMEOUT_S)
        for s in fleet:
            partitions = instance.get_dynamic_partitions(f"{s.name}_databases")
            assert sorted(partitions) == sorted(s.databases)
            assert instance.event_log_storage.get_concurrency_info(s.pool).slot_count == (
                s.pool_slots
            )

        # Every extraction run of both sources at once, one process per run.
        poller.start()
        extract_began = time.monotonic()
        extract = {
            f"{s.name}/{db}": procs.spawn(
                f"{s.name}_{db}",
                _execute(f"{s.name}__extract_database", {"dagster/partition": db}),
            )
            for s in fleet
            for db in s.databases
        }
        _wait_all(extract, PROCESS_TIMEOUT_S)
        extract_s = time.monotonic() - extract_began
        poller.stop()
        assert poller.error is None, f"poller failed: {poller.error!r}"

        worker_logs = [log.read_text("utf-8", errors="replace") for _, log in workers]
    finally:
        poller.stop()
        try:
            procs.stop_all()  # workers and any run process left behind
        finally:
            instance.dispose()

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        facts: dict[str, list[RunFacts]] = defaultdict(list)
        for s in fleet:
            runs = instance.get_runs(dg.RunsFilter(job_name=f"{s.name}__extract_database"))
            assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(s.databases)
            for run in runs:
                assert run.status == dg.DagsterRunStatus.SUCCESS, (s.name, run.tags)
                assert run.tags[SOURCE_TAG] == s.name
                facts[s.name].append(_run_facts(instance, run, s.name))
            # every claimed slot was given back
            info = instance.event_log_storage.get_concurrency_info(s.pool)
            assert info.claimed_slots == [] and info.pending_steps == [], info
        discover_runs = [
            r
            for s in fleet
            for r in instance.get_runs(dg.RunsFilter(job_name=f"{s.name}__discover_databases"))
        ]
        assert [r.status for r in discover_runs] == [dg.DagsterRunStatus.SUCCESS] * len(fleet)
    finally:
        instance.dispose()

    # Every step of every run was a celery task, executed by one of our workers.
    worker_names = {f"fleet{i}@{socket.gethostname()}" for i in range(1, WORKERS + 1)}
    steps_per_worker: Counter[str] = Counter()
    for runs in facts.values():
        for f in runs:
            assert f.succeeded_steps, f.run_id
            assert set(f.celery_steps) == f.succeeded_steps, (f.database, f.celery_steps)
            steps_per_worker.update(f.celery_steps.values())
    assert set(steps_per_worker) <= worker_names, steps_per_worker
    step_count = sum(steps_per_worker.values())
    tasks_done = sum(len(TASK_SUCCEEDED.findall(log)) for log in worker_logs)
    assert tasks_done == step_count + len(fleet), (tasks_done, step_count)  # + discovery steps

    # The cap held: sampled sessions, and Dagster's own step timings, per source.
    summary = []
    for s in fleet:
        peak = poller.peak[s.name]
        overlap = _max_overlap([f.catalog_interval for f in facts[s.name]])
        waited = max(f.catalog_submitted - f.run_start for f in facts[s.name])
        assert 1 <= peak <= s.max_connections, (s.name, peak, s.max_connections)
        assert overlap <= s.pool_slots, (s.name, overlap, s.pool_slots)
        summary.append(
            f"{s.name} peak {peak}/{s.max_connections} sessions "
            f"({s.pool_slots} slot(s), {overlap} catalog step(s) at once, "
            f"longest wait for a slot {waited:.1f}s)"
        )

    # Every database's output is complete, and the shared name is two separate databases.
    shared_names = {}
    for s in fleet:
        for db, layout in s.databases.items():
            manifest = _manifest(target, s.name, db)
            assert manifest["source"] == s.name and manifest["database"] == db
            assert manifest["entities"] == {
                "Database": 1,
                "Schema": layout.schemas,
                "Table": layout.table_count,
                "TablePartition": 0,
                "View": layout.view_count,
                "MaterialisedView": 0,
                "Column": layout.column_count,
            }, (s.name, db)
            if db == SHARED_DB:
                names = _qualified_names(manifest)
                assert len(names) == len(set(names)) == sum(manifest["entities"].values())
                assert all(n.startswith(f"{s.connection_qn}/{db}") for n in names), names
                shared_names[s.name] = set(names)
    alpha, beta = (shared_names[s.name] for s in fleet)
    assert not alpha & beta and len(alpha) != len(beta)

    dbs = sorted({len(s.databases) for s in fleet})
    per_worker = ", ".join(f"{w.split('@')[0]} {n}" for w, n in sorted(steps_per_worker.items()))
    print(
        f"\ncelery fleet: {len(fleet)} sources x {'/'.join(map(str, dbs))} databases "
        f"({sum(len(f) for f in facts.values())} extraction runs, {step_count} steps as celery "
        f"tasks on {WORKERS} workers x {WORKER_PROCESSES} processes: "
        f"{per_worker}); "
        + "; ".join(summary)
        + f"; {poller.samples} samples every {POLL_INTERVAL_S * 1000:.0f} ms; extraction wall "
        f"{extract_s:.1f}s, test {time.monotonic() - began:.1f}s"
    )
