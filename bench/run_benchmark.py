"""Benchmark: extracting a huge PostgreSQL catalog, ours side by side with the peers' ways.

    .venv/bin/python bench/run_benchmark.py --size medium

Starts a throwaway PostgreSQL server (``pg_metadata.demo.throwaway.ThrowawayServer``, tuned for the
benchmark) and a loopback moto S3 server, generates the catalog of each requested size
(``bench/generate_catalog.py``) and measures, on the same database, each approach in its own
subprocess: wall time, peak RSS (GNU ``time -f %M`` around the child) and SQL statements (from the
server's statement log, by application_name and database; plus a client-side count where we
control the client). Then it checks that our raw columns agree with the reflection-based
approaches, prints a table with ratios to the lower bound and writes
``bench/results/<size>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2.extensions import make_dsn

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import agreement  # noqa: E402
import generate_catalog  # noqa: E402
import profile_phases  # noqa: E402

if TYPE_CHECKING:
    from pg_metadata.demo.throwaway import ThrowawayServer

ADMIN_USER = "bench"
ADMIN_PASSWORD = "bench-secret"  # throwaway server on loopback only
BUCKET = "pg-metadata-bench"
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "max_locks_per_transaction": "256",
    "autovacuum": "off",  # keeps reltuples and timings stable between approaches
    "log_min_duration_statement": "-1",
    "log_line_prefix": "%m [%p] app=%a db=%d user=%u ",
    "log_statement": "none",  # switched to 'all' around the measurements only
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
}
VENV_BIN = Path(sys.executable).parent
CODE_SNAPSHOT: Path | None = None  # the copy of pg_metadata/ that every child imports
CODE_INFO: dict[str, str] = {}  # git commit, dirty files and SQL digest at snapshot time
TARGETS = {
    "time_vs_lower_bound": 3.0,
    "time_vs_floor2": 1.5,  # issue #13
    "speedup_vs_inspector": 10.0,
    "peak_rss_mb": 400.0,
    "rss_large_vs_medium": 1.3,
}


# ----------------------------------------------------------------------------- processes


@dataclass
class ProcessRun:
    """One measured child process."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(cmd: list[str], env: dict[str, str], discard_stdout: bool = False) -> ProcessRun:
    """Run cmd to completion; wall time and the peak RSS of cmd (and its children).

    The RSS comes from GNU ``/usr/bin/time -f %M``: a child forked from this (large) Python
    process would otherwise inherit our high-water mark in its rusage (Linux records the
    pre-exec address space in ru_maxrss). Without GNU time, ``os.wait4`` is used instead and
    the numbers are upper bounds.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".rss") as rss_file,
        open(os.devnull, "wb") as devnull,
    ):
        full = [TIME, "-q", "-f", "%M", "-o", rss_file.name, *cmd] if TIME else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            full, env=env, stdout=devnull if discard_stdout else out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        text = Path(rss_file.name).read_text().strip().splitlines()
    # both in KiB on Linux
    kib = int(text[-1]) if TIME and text and text[-1].isdigit() else usage.ru_maxrss
    return ProcessRun(wall, kib / 1024, proc.returncode, stdout, stderr)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A moto S3 server as a separate process on a loopback port; yields its endpoint."""
    port = free_port()
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("moto_server did not start")
        yield endpoint, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def process_peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a running process (MB)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------- server log


class StatementLog:
    """Counts statements in the server log written after a mark, by application and database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size

    def _matches(self, offset: int, needle: bytes, pattern: re.Pattern[str]) -> Iterator[re.Match]:
        """Matches of `pattern` on the log lines after `offset` that contain `needle`."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            for raw in f:
                if needle in raw:
                    m = pattern.search(raw.decode("utf-8", "replace"))
                    if m:
                        yield m

    def count(self, offset: int, application: str, database: str) -> int:
        return self.by_database(offset, application).get(database, 0)

    def durations_ms(self, offset: int, application: str, database: str) -> list[float]:
        """Durations of the statements (log_min_duration_statement = 0), in order."""
        pattern = re.compile(
            rf"app={re.escape(application)} db={re.escape(database)} .*?LOG:  duration: "
            r"([\d.]+) ms"
        )
        return [float(m.group(1)) for m in self._matches(offset, b"LOG:  duration: ", pattern)]

    def by_database(self, offset: int, application: str) -> dict[str, int]:
        pattern = re.compile(rf"app={re.escape(application)} db=(\S+) .*?LOG:  statement: ")
        counts: dict[str, int] = {}
        for m in self._matches(offset, b"LOG:  statement: ", pattern):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts


def set_statement_logging(dsn: str, on: bool) -> None:
    """Switch log_statement between 'all' and 'none' for new sessions."""
    conn = psycopg2.connect(dsn, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"ALTER SYSTEM SET log_statement = '{'all' if on else 'none'}'")
            cur.execute(f"ALTER SYSTEM SET log_min_duration_statement = {0 if on else -1}")
            cur.execute("SELECT pg_catalog.pg_reload_conf()")
    finally:
        conn.close()
    time.sleep(0.5)  # the postmaster re-reads the file asynchronously


# ----------------------------------------------------------------------------- results


@dataclass
class Measurement:
    """One approach's numbers at one size."""

    key: str
    label: str
    wall_s: float
    peak_rss_mb: float
    statements: int | None
    work_s: float | None = None  # the extraction itself, inside the process
    statements_client: int | None = None
    extrapolated: bool = False
    sample: int | None = None
    ok: bool = True
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def libpq_env(server: ThrowawayServer, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: ours minus PG*/AWS*/DAGSTER_HOME, plus the server's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "AWS_", "DAGSTER_")) or k in ("AWS_CA_BUNDLE",)
    }
    env.update(
        {
            "PGHOST": server.host,
            "PGPORT": str(server.port),
            "PGUSER": ADMIN_USER,
            "PGPASSWORD": ADMIN_PASSWORD,
            "PGSSLMODE": "disable",
            "PGDATABASE": "postgres",
        }
    )
    if CODE_SNAPSHOT:
        env["PYTHONPATH"] = str(CODE_SNAPSHOT)
    env.update(extra or {})
    return env


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:([\d.]+)ms)?$")


def parse_duration(text: str) -> float:
    """Dagster's format_duration back to seconds: 0.83ms, 533ms, 5.6s, 4m52s, 1h4m."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        return float("nan")
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0) + float(ms or 0) / 1000


def parse_dagster_log(text: str) -> dict[str, Any]:
    """Per-run step totals, per-step durations and the catalog-read line from `-v` output."""
    steps: dict[str, float] = {}
    runs: dict[str, float] = {}
    read: dict[str, Any] = {}
    for line in text.splitlines():
        m = re.search(r'Finished execution of step "([^"]+)" in ([^.]+(?:\.\d+)?\w*)\.$', line)
        if m:
            steps[m.group(1)] = parse_duration(m.group(2))
            continue
        m = re.search(r" - (\w+) - [0-9a-f-]{36} - \d+ - ENGINE_EVENT - Finished steps in "
                      r"process \(pid: \d+\) in (\S+)$", line)  # fmt: skip
        if m:
            runs[m.group(1)] = parse_duration(m.group(2))
            continue
        m = re.search(r" - read .* in ([\d.]+)s (?:\(|with )(\d+) statements", line)
        if m:
            read = {"query_seconds": float(m.group(1)), "statements_per_database": int(m.group(2))}
    return {"steps": steps, "runs": runs, **read}


# ----------------------------------------------------------------------------- approaches


class Bench:
    """All measurements of one size on one database."""

    def __init__(
        self,
        server: ThrowawayServer,
        s3_endpoint: str | None,
        moto_pid: int | None,
        workdir: Path,
        database: str,
        args: argparse.Namespace,
    ) -> None:
        self.server = server
        self.s3_endpoint = s3_endpoint
        self.moto_pid = moto_pid
        self.workdir = workdir
        self.database = database
        self.args = args
        self.log = StatementLog(server.log_path)
        self.dsn = make_dsn(
            host=server.host, port=server.port, user=ADMIN_USER, password=ADMIN_PASSWORD
        )
        self.local_output: Path | None = None  # our local output folder, for the agreement

    # --- ours -----------------------------------------------------------------------------

    def extract_cmd(self, output: str) -> list[str]:
        """`pg-metadata extract` of the benchmarked database into `output`, no retries."""
        include = json.dumps({f"^{re.escape(self.database)}$": "*"})
        return [str(VENV_BIN / "pg-metadata"), "extract", "--include", include,
                "--output", output, "--retries", "0"]  # fmt: skip

    def ours(self, output: str, key: str, label: str, extra_env: dict[str, str]) -> Measurement:
        """pg-metadata extract as a subprocess (discovery run + one database run)."""
        # -v: Dagster's run log, with step durations and the catalog-read line
        cmd = [*self.extract_cmd(output), "-v"]
        mark = self.log.mark()
        run = run_measured(cmd, libpq_env(self.server, extra_env))
        parsed = parse_dagster_log(run.stderr + run.stdout)
        per_db = self.log.by_database(mark, "pg_metadata")
        m = Measurement(
            key,
            label,
            run.wall_s,
            run.peak_rss_mb,
            per_db.get(self.database, 0),
            work_s=parsed["runs"].get("extract_database"),
            ok=run.returncode == 0,
            details={
                "command": cmd,
                "statements_by_database": per_db,
                "statements_per_database_metadata": parsed.get("statements_per_database"),
                "query_seconds": parsed.get("query_seconds"),
                "discovery_run_s": parsed["runs"].get("discover_databases"),
                "extract_run_s": parsed["runs"].get("extract_database"),
                "steps_s": parsed["steps"],
                "summary": [ln for ln in run.stdout.splitlines() if ln.startswith(" ")][:3],
            },
        )
        m.notes.append(
            "wall = whole command (Python + Dagster import, discovery run, extract run); "
            "work = extract_database run's steps"
        )
        if not m.ok:
            m.notes.append(f"FAILED rc={run.returncode}: {run.stderr.strip()[-500:]}")
        meta = m.details["statements_per_database_metadata"]
        if meta is not None and meta != m.statements:
            m.notes.append(f"server log counted {m.statements}, metadata says {meta}")
        return m

    def ours_local(self) -> Measurement:
        out = self.workdir / "ours_local"
        shutil.rmtree(out, ignore_errors=True)
        m = self.ours(str(out), "ours_local", "ours: pg-metadata extract -> local folder", {})
        m.details["output_bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        self.local_output = out
        return m

    def ours_s3(self) -> Measurement:
        assert self.s3_endpoint is not None
        env = {
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.workdir / "no_aws_config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no_aws_credentials"),
        }
        prefix = f"s3://{BUCKET}/{self.database}"
        m = self.ours(prefix, "ours_s3", "ours: pg-metadata extract -> S3 (moto, loopback)", env)
        if self.moto_pid:
            m.details["moto_server_peak_rss_mb"] = process_peak_rss_mb(self.moto_pid)
        return m

    # --- lower bound ------------------------------------------------------------------------

    def lower_bound(self, jit: bool = True) -> Measurement:
        """psql: our per-database queries as COPY ... TO STDOUT into /dev/null.

        The same queries (schemas, tables, columns and the fingerprint)
        with the same session settings (our ``options``: timeouts, work_mem) as ours.
        """
        from pg_metadata.catalog import datasets
        from pg_metadata.catalog.filters import CatalogFilter
        from pg_metadata.catalog.settings import ConnectionSettings

        per_db = [*datasets.PER_DATABASE, datasets.FINGERPRINT]
        conn = psycopg2.connect(self.dsn, dbname=self.database)
        try:
            with conn.cursor() as cur:
                params = {**CatalogFilter().sql_params(), "exact_sizes": False}
                queries = [cur.mogrify(d.sql(), params).decode("utf-8") for d in per_db]
        finally:
            conn.close()
        copies = [
            f"COPY (\n{q}\n) TO STDOUT WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')"
            for q in queries
        ]
        cmd = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.database,
            "-c",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            *[a for c in copies for a in ("-c", c)],
            "-c",
            "COMMIT",
        ]
        app = "bench_psql" if jit else "bench_psql_nojit"
        options = ConnectionSettings().session_options() + ("" if jit else " -c jit=off")
        extra = {"PGAPPNAME": app, "PGOPTIONS": options}
        mark = self.log.mark()
        run = run_measured(cmd, libpq_env(self.server, extra), discard_stdout=True)
        statements = self.log.count(mark, app, self.database)
        key = "lower_bound" if jit else "lower_bound_nojit"
        names = ", ".join(d.name for d in per_db)
        label = f"lower bound: psql COPY of our {len(per_db)} queries" + (
            "" if jit else ", jit=off"
        )
        m = Measurement(key, label, run.wall_s, run.peak_rss_mb, statements, ok=run.returncode == 0)
        m.details["command"] = (
            f"PGOPTIONS='{options}' psql -X -q -v ON_ERROR_STOP=1 -d {self.database} "
            "-c 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' "
            f"-c 'COPY (<query>) TO STDOUT WITH (FORMAT csv, HEADER true)' for each of {names} "
            "-c COMMIT > /dev/null"
        )
        m.details["queries"] = [d.name for d in per_db]
        durations = self.log.durations_ms(mark, app, self.database)
        if len(durations) == len(per_db) + 2:  # BEGIN, one COPY per query, COMMIT
            m.details["query_seconds"] = {
                d.name: round(ms / 1000, 3) for d, ms in zip(per_db, durations[1:-1], strict=True)
            }
        if not jit:
            m.notes.append("informative: the same with jit=off")
        if not m.ok:
            m.notes.append(f"FAILED: {run.stderr.strip()[-500:]}")
        return m

    def two_connection_floor(self) -> Measurement:
        """Our catalog read on two sessions in one snapshot, in parallel, into sinks: the
        server's own cost of the read as the extractor runs it (floor_two_connections.py)."""
        cmd = [sys.executable, str(BENCH / "floor_two_connections.py"), "--dsn", self.dsn,
               "--database", self.database]  # fmt: skip
        mark = self.log.mark()
        run = run_measured(cmd, libpq_env(self.server))
        statements = self.log.count(mark, "bench_floor2", self.database)
        label = "two-connection floor: our read on 2 sessions, one snapshot, into sinks"
        ok = run.returncode == 0
        out = json.loads(run.stdout.strip().splitlines()[-1]) if ok else {}
        # the read itself, from the first connect to the last COMMIT (not Python's start-up)
        m = Measurement(
            "floor_two_connections", label, out.get("seconds", run.wall_s), run.peak_rss_mb,
            statements, ok=ok,
        )  # fmt: skip
        m.details["command"] = [*cmd[:2], "--dsn", "<dsn>", "--database", self.database]
        m.details["query_seconds"] = out.get("query_seconds")
        m.notes.append("wall = connect to COMMIT inside the script")
        if not ok:
            m.notes.append(f"FAILED: {run.stderr.strip()[-500:]}")
        return m

    # --- peers ------------------------------------------------------------------------------

    def peer(self, approach: str, label: str, sample: int = 0) -> Measurement:
        """One approach of bench/approaches.py in its own process."""
        dump = self.workdir / f"{approach}.jsonl"
        result_path = self.workdir / f"{approach}.json"
        cmd = [
            sys.executable,
            str(BENCH / "approaches.py"),
            approach,
            "--database",
            self.database,
            "--dump",
            str(dump),
            "--result",
            str(result_path),
        ]
        if sample:
            cmd += ["--sample", str(sample)]
        mark = self.log.mark()
        run = run_measured(cmd, libpq_env(self.server))
        statements = self.log.count(mark, f"bench_{approach}", self.database)
        if run.returncode != 0:
            return Measurement(
                approach, label, run.wall_s, run.peak_rss_mb, statements, ok=False,
                notes=[f"FAILED: {run.stderr.strip()[-800:]}"],
            )  # fmt: skip
        r = json.loads(result_path.read_text())
        m = Measurement(
            approach,
            label,
            run.wall_s,
            run.peak_rss_mb,
            statements,
            work_s=r["extract_seconds"],
            statements_client=r["statements_client"],
            details=r,
        )
        m.details["dump"] = str(dump)
        if r.get("sampled"):
            self._extrapolate(m, r)
        return m

    def _extrapolate(self, m: Measurement, r: dict[str, Any]) -> None:
        """Linear extrapolation of a sampled table-by-table reflection to every relation."""
        total, done = r["relations_total"], r["relations_reflected"]
        factor = total / done
        per_rel = r["reflection_seconds"] / done
        measured = {"wall_s": m.wall_s, "work_s": m.work_s, "statements": m.statements}
        m.details["measured_on_sample"] = measured
        m.wall_s = m.wall_s - r["reflection_seconds"] + per_rel * total
        m.work_s = (m.work_s or 0) - r["reflection_seconds"] + per_rel * total
        if m.statements is not None:
            m.statements = round(
                m.statements - r["reflection_statements"] + r["reflection_statements"] * factor
            )
        growth = r["rss_after_reflection_mb"] - r["rss_before_reflection_mb"]
        m.details["rss_growth_mb_per_1000_relations"] = growth / done * 1000
        m.details["peak_rss_extrapolated_mb"] = r["rss_before_reflection_mb"] + growth * factor
        m.extrapolated = True
        m.sample = done
        m.notes.append(
            f"extrapolated linearly from {done} of {total} relations reflected "
            f"({per_rel * 1000:.2f} ms and {r['reflection_statements'] / done:.1f} statements "
            f"per relation); peak RSS measured on the sample "
            f"(linear RSS extrapolation: {m.details['peak_rss_extrapolated_mb']:.0f} MB)"
        )

    def import_baseline(self) -> Measurement:
        """What merely starting our CLI's Python costs: import the Dagster definitions."""
        code = "import pg_metadata.cli.main, pg_metadata.definitions, dagster"
        run = run_measured([sys.executable, "-c", code], libpq_env(self.server))
        return Measurement(
            "ours_import_only",
            "ours: Python + Dagster import only (baseline)",
            run.wall_s,
            run.peak_rss_mb,
            0,
            notes=["fixed cost included in both ours rows"],
        )

    def profile(self) -> dict[str, Any]:
        """py-spy (idle samples included) of one more local run; shares of time per phase."""
        spy = VENV_BIN / "py-spy"
        if not spy.exists():
            return {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
        out = self.workdir / "profile_out"
        shutil.rmtree(out, ignore_errors=True)
        raw = self.workdir / "profile.txt"
        cmd = [
            str(spy), "record", "--idle", "--threads", "-r", "100", "-f", "raw", "-o", str(raw),
            "--", *self.extract_cmd(str(out)),
        ]  # fmt: skip
        run = run_measured(cmd, libpq_env(self.server))
        shutil.rmtree(out, ignore_errors=True)
        if run.returncode != 0 or not raw.exists():
            return {"error": run.stderr.strip()[-500:]}
        shares = profile_phases.phases(raw.read_text())
        kept = self.args.results_dir / f"{self.database.removeprefix('bench_')}.profile.txt"
        shutil.copyfile(raw, kept)
        return {
            "wall_s": run.wall_s,
            "profile": str(kept.relative_to(ROOT) if kept.is_relative_to(ROOT) else kept),
            "shares": shares,
            "seconds": {k: v * run.wall_s for k, v in shares.items()},
        }


# ----------------------------------------------------------------------------- report


def machine_facts(dsn: str) -> dict[str, Any]:
    """nproc, CPU, RAM, and the versions that matter."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    conn = psycopg2.connect(dsn, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version(), current_setting('jit'), current_setting('work_mem')")
            pg_version, jit, work_mem = cur.fetchone()
    finally:
        conn.close()

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "postgresql": pg_version,
        "server_jit": jit,
        "server_work_mem": work_mem,
        "python": platform.python_version(),
        **{
            pkg: version(pkg)
            for pkg in (
                "dagster",
                "SQLAlchemy",
                "pyarrow",
                "psycopg2-binary",
                "orjson",
                "boto3",
                "moto",
            )
        },
    }


def code_version() -> dict[str, str]:
    """The commit and dirty state of the tree, and a digest of the catalog SQL measured."""
    import hashlib

    def git(*a: str) -> str:
        out = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip()

    code = CODE_SNAPSHOT or ROOT
    sql = b"".join(p.read_bytes() for p in sorted((code / "pg_metadata").rglob("*.sql")))
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_files": git("status", "--porcelain", "--", "pg_metadata"),
        "sql_sha256": hashlib.sha256(sql).hexdigest()[:16],
    }


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the table, '-' when unknown."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(results: list[Measurement], lower: Measurement | None) -> str:
    """The side-by-side table (Markdown) with ratios to the lower bound."""
    head = (
        "| approach | wall s | x lower bound | work s | peak RSS MB | SQL statements | notes |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    rows = [head]
    for m in results:
        ratio = m.wall_s / lower.wall_s if lower and lower.wall_s else None
        flag = " (extrapolated)" if m.extrapolated else ""
        rss = fmt(m.peak_rss_mb, 0) + (f" (sample of {m.sample})" if m.sample else "")
        stmts = "-" if m.statements is None else f"{m.statements:,}"
        if m.statements_client is not None and not m.extrapolated:
            stmts += f" ({m.statements_client:,} client)"
        notes = "; ".join(n for n in m.notes if not n.startswith("wall = "))
        rows.append(
            f"| {m.label} | {fmt(m.wall_s, 2)}{flag} | {fmt(ratio, 2)} | {fmt(m.work_s, 2)} | "
            f"{rss} | {stmts}{flag if m.statements is not None else ''} | "
            f"{'' if m.ok else 'FAILED '}{notes} |"
        )
    return "\n".join(rows)


def verdicts(size: str, by_key: dict[str, Measurement], medium: dict | None) -> list[str]:
    """The issue's targets, checked against this size's numbers."""
    lines = []
    ours, lower = by_key.get("ours_local"), by_key.get("lower_bound")
    insp = by_key.get("inspector")
    if ours and lower:
        r = ours.wall_s / lower.wall_s
        lines.append(
            f"time vs lower bound: {r:.2f}x (target <= {TARGETS['time_vs_lower_bound']}x): "
            f"{'met' if r <= TARGETS['time_vs_lower_bound'] else 'NOT met'}"
        )
    floor2 = by_key.get("floor_two_connections")
    if ours and floor2 and floor2.ok:
        r = ours.wall_s / floor2.wall_s
        lines.append(
            f"time vs two-connection floor: {r:.2f}x (target <= {TARGETS['time_vs_floor2']}x): "
            f"{'met' if r <= TARGETS['time_vs_floor2'] else 'NOT met'}"
        )
    if ours and insp:
        r = insp.wall_s / ours.wall_s
        lines.append(
            f"speed-up vs table-by-table reflection: {r:.1f}x "
            f"(target >= {TARGETS['speedup_vs_inspector']}x): "
            f"{'met' if r >= TARGETS['speedup_vs_inspector'] else 'NOT met'}"
        )
    for key in ("ours_local", "ours_s3"):
        m = by_key.get(key)
        if m:
            ok = m.peak_rss_mb < TARGETS["peak_rss_mb"]
            lines.append(
                f"{key} peak RSS: {m.peak_rss_mb:.0f} MB (target < {TARGETS['peak_rss_mb']:.0f}"
                f" MB): {'met' if ok else 'NOT met'}"
            )
    if ours:
        lines.append(f"{key_statements(ours)} SQL statements on the extracted database")
    if size == "large" and medium and ours:
        med = next((m for m in medium["measurements"] if m["key"] == "ours_local"), None)
        if med:
            r = ours.peak_rss_mb / med["peak_rss_mb"]
            lines.append(
                f"peak RSS large / medium: {r:.2f} (target <= {TARGETS['rss_large_vs_medium']}):"
                f" {'met' if r <= TARGETS['rss_large_vs_medium'] else 'NOT met'}"
            )
    return lines


def key_statements(m: Measurement) -> str:
    """Statements of a measurement for a sentence."""
    return "-" if m.statements is None else str(m.statements)


# ----------------------------------------------------------------------------- main


def run_size(
    size_name: str,
    server: ThrowawayServer,
    s3: tuple[str, int] | None,
    workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Generate one size and measure every approach on it."""
    size = generate_catalog.SIZES[size_name]
    database = f"bench_{size_name}"
    dsn = make_dsn(host=server.host, port=server.port, user=ADMIN_USER, password=ADMIN_PASSWORD)
    print(f"\n== {size_name}: generating {database} ...", flush=True)
    gen = generate_catalog.generate(dsn, database, size, args.seed, args.jobs)
    counts = generate_catalog.catalog_counts(dsn, database)
    print(
        f"   generated in {gen.seconds:.1f}s: "
        + ", ".join(f"{k}={v:,}" for k, v in counts.items()),
        flush=True,
    )
    size_dir = workdir / size_name
    size_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(server, s3[0] if s3 else None, s3[1] if s3 else None, size_dir, database, args)
    sample = args.reflection_sample
    skip = set(args.skip or [])
    plan: list[tuple[str, Any]] = [
        ("lower_bound", lambda: bench.lower_bound(jit=True)),
        ("lower_bound_nojit", lambda: bench.lower_bound(jit=False)),
        ("floor_two_connections", bench.two_connection_floor),
        ("ours_import_only", bench.import_baseline),
        ("ours_local", bench.ours_local),
        ("ours_s3", bench.ours_s3),
        ("multi", lambda: bench.peer("multi", "SQLAlchemy 2 get_multi_* per schema")),
        (
            "information_schema",
            lambda: bench.peer("information_schema", "information_schema set-based queries"),
        ),
        (
            "inspector",
            lambda: bench.peer(
                "inspector", "SQLAlchemy Inspector table by table (DataHub/OpenMetadata)", sample
            ),
        ),
    ]
    if s3 is None:
        skip.add("ours_s3")
    if args.warmup:
        print("   warm-up (the lower bound once, not measured) ...", end="", flush=True)
        print(f" {bench.lower_bound(jit=True).wall_s:.2f}s", flush=True)
    set_statement_logging(dsn, True)
    measurements: list[Measurement] = []
    try:
        for key, fn in plan:
            if key in skip:
                continue
            for attempt in range(max(1, args.repeat)):
                print(f"   {key}{f' (run {attempt + 1})' if args.repeat > 1 else ''} ...",
                      end="", flush=True)  # fmt: skip
                m = fn()
                print(
                    f" {m.wall_s:.2f}s{' (extrapolated)' if m.extrapolated else ''}, "
                    f"{m.peak_rss_mb:.0f} MB, {m.statements} statements"
                    f"{'' if m.ok else ' FAILED'}",
                    flush=True,
                )
                prev = next((x for x in measurements if x.key == key), None)
                if prev is None:
                    measurements.append(m)
                elif m.wall_s < prev.wall_s:  # best of N (peak RSS: the worst)
                    m.peak_rss_mb = max(m.peak_rss_mb, prev.peak_rss_mb)
                    measurements[measurements.index(prev)] = m
                else:
                    prev.peak_rss_mb = max(m.peak_rss_mb, prev.peak_rss_mb)
    finally:
        set_statement_logging(dsn, False)
    by_key = {m.key: m for m in measurements}

    checks: list[dict[str, Any]] = []
    failed_checks: list[str] = []
    if bench.local_output is not None and by_key["ours_local"].ok:
        for key, strict in (("multi", True), ("inspector", True), ("information_schema", False)):
            m = by_key.get(key)
            if not m or not m.ok:
                continue
            res = agreement.check(
                bench.local_output, database, Path(m.details["dump"]), key, m.extrapolated
            )
            print(res.report(limit=5))
            summary = res.summary()
            summary["strict"] = strict
            checks.append(summary)
            if strict and not res.ok:
                failed_checks.append(key)

    profile = bench.profile() if args.profile else None
    lower = by_key.get("lower_bound")
    floor2 = by_key.get("floor_two_connections")
    previous_medium = None
    medium_file = args.results_dir / "medium.json"
    if size_name == "large" and medium_file.exists():
        previous_medium = json.loads(medium_file.read_text())
    result = {
        "size": size_name,
        "database": database,
        "shape": asdict(size),
        "catalog": counts,
        "generate_seconds": round(gen.seconds, 1),
        "reflection_sample": sample or None,
        "measurements": [asdict(m) for m in measurements],
        "ratios_to_lower_bound": {
            m.key: round(m.wall_s / lower.wall_s, 3) for m in measurements if lower
        },
        "ratios_to_two_connection_floor": {
            m.key: round(m.wall_s / floor2.wall_s, 3) for m in measurements if floor2
        },
        "agreement": checks,
        "agreement_ok": not failed_checks,
        "profile": profile,
        "verdicts": verdicts(size_name, by_key, previous_medium),
    }
    if not args.keep_database:
        conn = psycopg2.connect(dsn, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.close()
    shutil.rmtree(size_dir / "ours_local", ignore_errors=True)
    return result


def print_result(result: dict[str, Any]) -> None:
    """The table, verdicts and profile of one size."""
    ms = [Measurement(**m) for m in result["measurements"]]
    lower = next((m for m in ms if m.key == "lower_bound"), None)
    c = result["catalog"]
    print(
        f"\n### {result['size']}: {c['schemas']:,} schemas, {c['relations']:,} relations "
        f"({c['tables']:,} tables, {c['partitioned_tables']:,} partitioned, "
        f"{c['partitions']:,} partitions, {c['views']:,} views, "
        f"{c['materialized_views']:,} materialized views), {c['columns']:,} columns\n"
    )
    print(table(ms, lower))
    print()
    code = result.get("code") or {}
    dirty = "clean" if not code.get("dirty_files") else "uncommitted changes in pg_metadata/"
    print(
        f"- catalog generated in {result['generate_seconds']}s; code {code.get('commit', '?')} "
        f"({dirty}), catalog SQL sha256 {code.get('sql_sha256', '?')}"
    )
    for line in result["verdicts"]:
        print(f"- {line}")
    if lower and lower.details.get("query_seconds"):
        per_query = ", ".join(f"{k} {v:.2f}s" for k, v in lower.details["query_seconds"].items())
        print(f"- lower bound per query (server log durations): {per_query}")
    ours = next((m for m in ms if m.key == "ours_local"), None)
    if ours:
        d = ours.details
        steps = ", ".join(
            f"{k} {v:.2f}s" for k, v in sorted(d["steps_s"].items(), key=lambda x: -x[1])
        )
        print(
            f"- ours local: discovery run {fmt(d['discovery_run_s'], 2)}s, extract run "
            f"{fmt(d['extract_run_s'], 2)}s (catalog queries {fmt(d['query_seconds'], 2)}s, "
            f"{d['statements_per_database_metadata']} statements per metadata); steps: {steps}"
        )
    if result.get("profile") and "shares" in result["profile"]:
        p = result["profile"]
        raw = ROOT / p["profile"]
        if raw.exists():  # re-classify with the current rules
            p["shares"] = profile_phases.phases(raw.read_text())
        shares = ", ".join(f"{k} {v * 100:.0f}%" for k, v in p["shares"].items())
        print(f"- profile of ours (py-spy, {p['wall_s']:.1f}s wall): {shares}")
    print(f"- agreement: {'OK' if result['agreement_ok'] else 'FAILED'}")


def snapshot_code(target: Path) -> None:
    """Copy pg_metadata/ aside and import it (and make every child import it) from there.

    A run takes minutes and the package may be edited meanwhile; every measurement of one run
    uses the code as it was when the run started. code_version() records which.
    """
    global CODE_SNAPSHOT
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        ROOT / "pg_metadata",
        target / "pg_metadata",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    CODE_SNAPSHOT = target
    CODE_INFO.update(code_version())
    sys.path.insert(0, str(target))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description="Benchmark pg-metadata against the peers' ways of extracting a catalog."
    )
    parser.add_argument(
        "--size", nargs="+", default=["small"], choices=list(generate_catalog.SIZES)
    )
    parser.add_argument(
        "--reflection-sample",
        type=int,
        default=0,
        help="inspector: reflect only N relations and extrapolate linearly, for quicker runs "
        "(default 0: reflect every relation)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per approach (best of N)")
    parser.add_argument(
        "--skip",
        nargs="*",
        choices=[
            "lower_bound", "lower_bound_nojit", "floor_two_connections", "ours_import_only",
            "ours_local", "ours_s3",
            "multi", "information_schema", "inspector",
        ],
    )  # fmt: skip
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 run (no moto server)")
    parser.add_argument("--profile", action="store_true", help="py-spy one more run of ours")
    parser.add_argument("--jobs", type=int, default=2, help="connections for generation")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the unmeasured warm-up run of the catalog queries after generation",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only print the tables of the sizes' JSON files already in --results-dir",
    )
    args = parser.parse_args(argv)
    if args.report:
        for size_name in args.size:
            path = args.results_dir / f"{size_name}.json"
            if path.exists():
                print_result(json.loads(path.read_text()))
        return 0
    if shutil.which("psql") is None:
        print("psql not found (apt-get install postgresql-client)", file=sys.stderr)
        return 2
    args.results_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pg_metadata_bench_"))
    snapshot_code(workdir / "code")
    from pg_metadata.demo.throwaway import ThrowawayServer

    exit_code = 0
    command = " ".join([".venv/bin/python", "bench/run_benchmark.py", *sys.argv[1:]])
    try:
        with (
            ThrowawayServer(ADMIN_USER, ADMIN_PASSWORD, settings=SERVER_SETTINGS) as server,
            moto_server(workdir) if not args.no_s3 else contextlib.nullcontext() as s3,
        ):
            s3_info = None
            if s3 is not None:
                endpoint, proc = s3
                import boto3

                boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench-secret",
                    region_name="us-east-1",
                ).create_bucket(Bucket=BUCKET)
                s3_info = (endpoint, proc.pid)
            dsn = make_dsn(
                host=server.host, port=server.port, user=ADMIN_USER, password=ADMIN_PASSWORD
            )
            facts = machine_facts(dsn)
            print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()), flush=True)
            for size_name in args.size:
                result = run_size(size_name, server, s3_info, workdir, args)
                result.update(
                    {
                        "command": command,
                        "machine": facts,
                        "server_settings": SERVER_SETTINGS,
                        "code": CODE_INFO,
                        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    }
                )
                path = args.results_dir / f"{size_name}.json"
                path.write_text(json.dumps(result, indent=2, default=str) + "\n")
                print_result(result)
                print(f"- results: {path}")
                if not result["agreement_ok"] or not all(m["ok"] for m in result["measurements"]):
                    exit_code = 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
