"""A fleet extraction on Dagster's real distributed machinery: dagster-celery workers, a Redis
broker, a shared Dagster instance, and two PostgreSQL servers with per-source connection caps.

The test starts everything itself on loopback: redis-server, two `dagster-celery worker start`
workers (two processes each), one `dagster job execute` process per run. Every run uses the
celery executor (PG_METADATA_EXECUTOR=celery), so each step is a celery task executed in a
worker process; the run processes only orchestrate, and claim a slot of the source's pool
before they submit a step that connects to the source. All extraction runs of both sources are
launched at once and held at their pools (the test holds every slot) until every catalog step
is queued; then all are let go together. Meanwhile a thread samples pg_stat_activity on both
servers: a source's sessions must never exceed its `max_connections`.
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
from collections import Counter
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


def _group_members(pgid: int) -> set[int]:
    """Pids of the live processes in a process group."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.add(int(stat.parent.name))
    return pids


def _group_alive(pgid: int) -> bool:
    """Whether any live process is left in the process group."""
    return bool(_group_members(pgid))


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


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server not found: apt-get install redis-server", pytrace=False)
    return binary


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A throwaway redis-server on a loopback port, without persistence; yields its URL."""
    import redis

    binary = _redis_server_binary()
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


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = current = 0
    for _, delta in points:  # at the same instant an end sorts before a start
        current += delta
        peak = max(peak, current)
    return peak


@dataclass
class RunFacts:
    """What one extraction run's event log says about where and when its steps ran."""

    run_id: str
    database: str
    run_pid: int  # the process that orchestrated the run
    step_pids: dict[str, int]  # step key -> process that executed it
    celery_steps: dict[str, str]  # step key -> celery worker that executed it
    succeeded_steps: set[str]
    catalog_interval: tuple[float, float]  # STEP_START .. STEP_SUCCESS of the catalog step


def _run_facts(instance: dg.DagsterInstance, run: dg.DagsterRun, source: str) -> RunFacts:
    catalog = CATALOG_STEP.format(source=source)
    run_pid, step_pids, celery, succeeded = None, {}, {}, set()
    start = end = None
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind, key = event.event_type, event.step_key
        if kind == dg.DagsterEventType.RUN_START:
            run_pid = event.pid
        elif kind == dg.DagsterEventType.STEP_START:
            step_pids[key] = event.pid
            start = entry.timestamp if key == catalog else start
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            succeeded.add(key)
            end = entry.timestamp if key == catalog else end
        elif kind == dg.DagsterEventType.ENGINE_EVENT and CELERY_STEP_MESSAGE in entry.message:
            worker = event.engine_event_data.metadata.get("Celery worker")
            celery[key] = str(worker.value) if worker is not None else ""
    assert run_pid is not None and start is not None and end is not None, run.run_id
    return RunFacts(
        run_id=run.run_id,
        database=run.tags["dagster/partition"],
        run_pid=run_pid,
        step_pids=step_pids,
        celery_steps=celery,
        succeeded_steps=succeeded,
        catalog_interval=(start, end),
    )


def _manifest(target: Path, source: str, database: str) -> dict:
    path = target / source / "latest" / f"{encode_segment(database)}.json"
    assert path.exists(), f"no complete output for {source}/{database}: {path} is missing"
    return json.loads(path.read_text("utf-8"))


def _qualified_names(manifest: dict) -> list[str]:
    names = []
    for file in manifest["files"]:
        if file["path"].startswith("transformed/"):
            uri = file["uri"]
            local = Path(uri[7:] if uri.startswith("file://") else uri)
            for line in local.read_text("utf-8").splitlines():
                names.append(json.loads(line)["attributes"]["qualifiedName"])
    return names


# --- the pool gate ----------------------------------------------------------------------------


class PoolGate:
    """Holds every slot of the sources' pools, so all runs queue on them; then lets go at once.

    The slots are claimed in the instance's storage, as a run's step would claim them, so the
    run processes see full pools and wait, with their catalog steps pending, exactly as behind
    a long-running extraction. Released together, every catalog step is ready at the same
    instant: only the pools stand between them and the servers.
    """

    RUN_ID = "pgm-fleet-test-gate"

    def __init__(self, instance: dg.DagsterInstance, sources: list[FleetSource]) -> None:
        self.storage = instance.event_log_storage
        self.sources = sources
        self.released = False

    def close(self) -> None:
        for s in self.sources:
            for i in range(s.pool_slots):
                status = self.storage.claim_concurrency_slot(s.pool, self.RUN_ID, f"gate_{i}")
                assert status.is_claimed, (s.pool, status)

    def waiting(self, source: FleetSource) -> int:
        """Steps queued on the source's pool (not yet given a slot)."""
        return self.storage.get_concurrency_info(source.pool).pending_step_count

    def wait_until_queued(
        self, counts: dict[str, int], runs: dict[str, tuple[subprocess.Popen, Path]]
    ) -> None:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while any(self.waiting(s) < counts[s.name] for s in self.sources):
            for label, (proc, log) in runs.items():
                assert proc.poll() is None, f"{label} exited with {proc.returncode}:\n{_tail(log)}"
            if time.monotonic() > deadline:
                queued = {s.name: self.waiting(s) for s in self.sources}
                pytest.fail(f"runs did not all queue on the pools: {queued} of {counts}")
            time.sleep(0.2)

    def open(self) -> None:
        if not self.released:
            self.released = True
            self.storage.free_concurrency_slots_for_run(self.RUN_ID)


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
    """`dagster job execute`: the run is orchestrated in this process, its steps go to celery."""
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
    fleet: list[FleetSource], tmp_path: Path
) -> None:
    began = time.monotonic()
    _redis_server_binary()  # fail at once, with the fix, where CI lacks it
    home, target = tmp_path / "dagster_home", tmp_path / "out"
    home.mkdir()
    instance_yaml = {
        "telemetry": {"enabled": False},
        "concurrency": {"pools": {"granularity": "op"}},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(yaml.safe_dump({"sources": [s.entry() for s in fleet]}))
    # the workers' celery app: the same broker and result backend as the executor's config
    broker = {"env": "CELERY_BROKER_URL"}
    celery_yaml = tmp_path / "celery.yaml"
    celery_yaml.write_text(
        yaml.safe_dump({"execution": {"config": {"broker": broker, "backend": broker}}})
    )

    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path / "redis"))
        env = _environment(home, sources_file, target, redis_url, fleet)
        # Created here first, so the processes never race to create the sqlite storage.
        instance = dg.DagsterInstance.from_config(str(home))
        stack.callback(instance.dispose)
        assert instance.event_log_storage.supports_global_concurrency_limits
        procs = Processes(tmp_path / "logs", env, Path(__file__).resolve().parents[3])
        stack.callback(procs.stop_all)  # workers and any run process left behind
        poller = SessionPoller(fleet)
        stack.callback(poller.stop)
        workers = _start_workers(procs, celery_yaml)

        # Discovery (its steps on the workers too): one partition per database, pool limits.
        discover = {
            f"{s.name} discovery": procs.spawn(
                f"{s.name}_discover", _execute(f"{s.name}__discover_databases")
            )
            for s in fleet
        }
        _wait_ready(workers)
        _wait_all(discover, PROCESS_TIMEOUT_S)
        for s in fleet:
            assert sorted(instance.get_dynamic_partitions(f"{s.name}_databases")) == sorted(
                s.databases
            )
            info = instance.event_log_storage.get_concurrency_info(s.pool)
            assert info.slot_count == s.pool_slots, (s.pool, info)

        # Every extraction run of both sources at once, one process per run, all held at the
        # pools until every catalog step is queued there; then all are released together.
        gate = PoolGate(instance, fleet)
        gate.close()
        stack.callback(gate.open)
        poller.start()
        extract_began = time.monotonic()
        extract = {
            f"{s.name}/{db}": procs.spawn(
                f"{s.name}_{db}", _execute(f"{s.name}__extract_database", {"dagster/partition": db})
            )
            for s in fleet
            for db in s.databases
        }
        gate.wait_until_queued({s.name: len(s.databases) for s in fleet}, extract)
        queued = {s.name: gate.waiting(s) for s in fleet}
        sessions_while_queued = dict(poller.peak)
        gate.open()
        _wait_all(extract, PROCESS_TIMEOUT_S)
        extract_s = time.monotonic() - extract_began
        poller.stop()
        assert poller.error is None, f"pg_stat_activity poller failed: {poller.error!r}"
        run_pids = {label: proc.pid for label, (proc, _) in extract.items()}
        worker_pids = {pid for proc, _ in workers for pid in _group_members(proc.pid)}
        worker_logs = [log.read_text("utf-8", errors="replace") for _, log in workers]

    assert sessions_while_queued == dict.fromkeys(queued, 0)  # nothing connects past the gate
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        facts: dict[str, list[RunFacts]] = {}
        for s in fleet:
            runs = instance.get_runs(dg.RunsFilter(job_name=f"{s.name}__extract_database"))
            assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(s.databases)
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), s.name
            assert all(r.tags[SOURCE_TAG] == s.name for r in runs)
            facts[s.name] = [_run_facts(instance, r, s.name) for r in runs]
            info = instance.event_log_storage.get_concurrency_info(s.pool)
            assert info.claimed_slots == [] and info.pending_steps == [], info  # all given back
        for s in fleet:
            (discovery,) = instance.get_runs(
                dg.RunsFilter(job_name=f"{s.name}__discover_databases")
            )
            assert discovery.status == dg.DagsterRunStatus.SUCCESS
    finally:
        instance.dispose()

    # Each run was orchestrated by its own `dagster job execute` process, and every one of its
    # steps was a celery task executed in a worker's pool process, never in the run's process.
    hosts = {f"fleet{i}@{socket.gethostname()}" for i in range(1, WORKERS + 1)}
    steps_per_worker: Counter[str] = Counter()
    for s in fleet:
        for f in facts[s.name]:
            assert f.run_pid == run_pids[f"{s.name}/{f.database}"]
            assert f.succeeded_steps == set(f.step_pids) == set(f.celery_steps), f
            assert set(f.step_pids.values()) <= worker_pids - {f.run_pid}, f
            steps_per_worker.update(f.celery_steps.values())
    assert set(steps_per_worker) <= hosts, steps_per_worker
    step_count = sum(steps_per_worker.values())
    tasks_done = sum(len(TASK_SUCCEEDED.findall(log)) for log in worker_logs)
    assert tasks_done == step_count + len(fleet)  # + one discovery step per source

    # The caps held: sessions sampled on the servers, and catalog steps timed by Dagster.
    figures = []
    for s in fleet:
        peak = poller.peak[s.name]
        at_once = _max_overlap([f.catalog_interval for f in facts[s.name]])
        assert 1 <= peak <= s.max_connections, (s.name, peak, s.max_connections)
        assert at_once <= s.pool_slots, (s.name, at_once, s.pool_slots)
        unpooled = min(len(s.databases), WORKERS * WORKER_PROCESSES) * min(
            s.query_connections, s.max_connections
        )
        figures.append(
            f"{s.name}: peak {peak}/{s.max_connections} sessions ({unpooled} without the pool), "
            f"{s.pool_slots} slot(s), {at_once} catalog step(s) at once, {queued[s.name]} "
            f"queued at the gate, sessions seen in {poller.busy_samples[s.name]} samples"
        )

    # Every database's output is complete, and the shared name is two separate databases.
    shared = {}
    for s in fleet:
        for db, layout in s.databases.items():
            manifest = _manifest(target, s.name, db)
            assert (manifest["source"], manifest["database"]) == (s.name, db)
            assert manifest["entities"] == {
                "Database": 1,
                "Schema": layout.schemas,
                "Table": layout.table_count,
                "TablePartition": 0,
                "View": layout.view_count,
                "MaterialisedView": 0,
                "Column": layout.column_count,
                "Procedure": 0,
                "Process": layout.view_count,  # one per view, each reads t0
                "ColumnProcess": layout.view_count * 2,  # id and name of every view
            }, (s.name, db)
            if db == SHARED_DB:
                names = _qualified_names(manifest)
                assert len(names) == len(set(names)) == sum(manifest["entities"].values())
                assert all(n.startswith(f"{s.connection_qn}/") for n in names), names
                processes = manifest["entities"]["Process"] + manifest["entities"]["ColumnProcess"]
                in_db = [n for n in names if n.startswith(f"{s.connection_qn}/{db}")]
                assert len(in_db) == len(names) - processes, names
                shared[s.name] = set(names)
    first, second = (shared[s.name] for s in fleet)
    assert not first & second and len(first) != len(second)

    per_worker = ", ".join(f"{w.split('@')[0]} {n}" for w, n in sorted(steps_per_worker.items()))
    print(
        f"\ncelery fleet: {len(fleet)} sources x {len(fleet[0].databases)} databases, "
        f"{sum(map(len, facts.values()))} extraction runs, {step_count} steps as celery tasks "
        f"on {WORKERS} workers x {WORKER_PROCESSES} processes ({per_worker}); "
        + "; ".join(figures)
        + f"; {poller.samples} samples every {POLL_INTERVAL_S * 1000:.0f} ms; extraction wall "
        f"{extract_s:.1f}s, test {time.monotonic() - began:.1f}s"
    )
