"""`pg-metadata demo --serve` as a user runs it: the UI comes up, a run launched through the
webserver's GraphQL API (as the UI's Materialize button does) writes the output, and Ctrl-C
stops everything and removes every temp dir.

The command prints its PostgreSQL server's dir and its DAGSTER_HOME, so what is checked is exactly
what this run created, even while other tests start throwaway servers of their own. The test
records every descendant of the command while it runs (dagster dev is in a process group of its
own, the postmaster in a session of its own) and, if anything fails, kills them itself.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
# the gql transport under DagsterGraphQLClient, not our code
WARNINGS = "ignore:Using variable_values and operation_name:DeprecationWarning"
BIN = Path(sys.executable).parent
JOB = "default__extract_database"
DATABASE = "demo_shop"
STARTUP_TIMEOUT_S = 300  # server + catalog + first extraction + dagster dev, slow 2-core machine
RUN_TIMEOUT_S = 300
STOP_TIMEOUT_S = 150  # the command itself gives dagster dev 60 s, then kills what is left
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


class Output:
    """The command's merged stdout/stderr, read on a thread, waited on line by line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first line (from now on) matching pattern; fails on timeout or end of output."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{self.text()}")
            try:
                line = self._queue.get(timeout=min(remaining, 1))
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"output ended before {pattern!r}:\n{self.text()}")
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def drain(self, timeout: float = 10) -> None:
        """Collect the rest after the process exited."""
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines[-200:])


# -- processes, from /proc -------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(ppid, pgid, state, start time) of a process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[2]), fields[0], int(fields[19])


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of root."""
    children: dict[int, list[int]] = {}
    stats = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            stats[pid] = st
            children.setdefault(st[0], []).append(pid)
    found: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = stats[pid][3]
        todo += children.get(pid, [])
    return found


def alive(pid: int, start_time: int) -> bool:
    """The same process (not a reused pid) still runs, and is not a zombie."""
    st = _stat(pid)
    return st is not None and st[3] == start_time and st[2] != "Z"


def mentioning(*needles: str) -> dict[int, str]:
    """pid -> command line of the live processes that mention any of the needles."""
    found = {}
    for pid in _all_pids():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        st = _stat(pid)
        if st is not None and st[2] != "Z" and any(n in cmd for n in needles):
            found[pid] = cmd[:300]
    return found


def postmaster_pid(server_dir: Path) -> int | None:
    try:
        return int((server_dir / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the command -----------------------------------------------------------------------------


class Serve:
    """The running command and everything it is known to have started."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.output_dir = tmp_path / "out"
        env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME",)}
        env.pop("PG_METADATA_EXECUTOR", None)  # the default: what a user gets
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [
                str(BIN / "pg-metadata"),
                "demo",
                "--serve",
                "--port",
                str(self.port),
                "--output",
                str(self.output_dir),
            ],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal job would be
        )
        self.out = Output(self.proc.stdout)
        self.server_dir: Path | None = None  # the data dir, socket and log of PostgreSQL
        self.home: Path | None = None
        self.seen: dict[int, int] = {}  # pid -> start time of every process it started
        self.sockets: set[str] = set()  # the code servers' gRPC sockets
        self.postmaster: tuple[int, int] | None = None

    def record(self) -> None:
        """Remember the command's current descendants (and the postmaster, a daemon)."""
        self.seen.update(descendants(self.proc.pid))
        for pid in self.seen:
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                self.sockets.update(b for a, b in itertools.pairwise(args) if a == "--socket")
        pid = postmaster_pid(self.server_dir) if self.server_dir else None
        st = _stat(pid) if pid else None
        if pid and st:
            self.postmaster = (pid, st[3])
            self.seen[pid] = st[3]
            self.seen.update(descendants(pid))

    def leftovers(self) -> list[int]:
        return [pid for pid, start in self.seen.items() if alive(pid, start)]

    def kill_everything(self) -> None:
        """After a failure: leave nothing behind whatever state the command is in."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.postmaster and alive(*self.postmaster):
            os.kill(self.postmaster[0], signal.SIGQUIT)  # immediate shutdown, frees its memory
            deadline = time.monotonic() + 15
            while alive(*self.postmaster) and time.monotonic() < deadline:
                time.sleep(0.2)
        dirs = [str(d) for d in (self.server_dir, self.home) if d is not None]
        for pid in {*self.leftovers(), *(mentioning(*dirs) if dirs else {})}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        for path in (self.server_dir, self.home):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve(tmp_path) -> Iterator[Serve]:
    cmd = Serve(tmp_path)
    try:
        yield cmd
    finally:
        if cmd.proc.poll() is None or cmd.leftovers():
            cmd.kill_everything()
        cmd.out.drain(timeout=1)


def graphql_client(port: int):
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)


@pytest.mark.filterwarnings(WARNINGS)
def test_serve_runs_from_the_ui_and_stops_clean_on_ctrl_c(serve: Serve):
    t0 = time.monotonic()
    out = serve.out
    match = out.wait_for(r"demo server on \S+ \(files in (\S+)\)", STARTUP_TIMEOUT_S)
    serve.server_dir = Path(match.group(1))
    serve.home = Path(out.wait_for(r"Dagster home (\S+);", STARTUP_TIMEOUT_S).group(1))
    first = out.wait_for(rf"^\s+{DATABASE}: (\d+ Database, .*)$", STARTUP_TIMEOUT_S).group(1)
    serve.record()
    url = out.wait_for(r"Dagster UI on (http://\S+)", STARTUP_TIMEOUT_S).group(1)
    startup_s = time.monotonic() - t0
    assert url == f"http://127.0.0.1:{serve.port}"
    serve.record()
    with urllib.request.urlopen(f"{url}/server_info", timeout=30) as response:
        assert json.load(response)["dagster_version"]  # printed only once it answers

    # Launch the extraction of the demo database's partition as the UI does (launchRun).
    client = graphql_client(serve.port)
    t_submit = time.monotonic()
    run_id = client.submit_job_execution(JOB, tags={"dagster/partition": DATABASE})
    status = ""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        serve.record()  # the run worker, while it exists
        if status in TERMINAL:
            break
        time.sleep(0.5)
    run_s = time.monotonic() - t_submit
    assert status == "SUCCESS", f"run {run_id}: {status}\n{out.text()}"

    # The run's own manifest lists the entity counts, the same as the first extraction's.
    manifest_path = serve.output_dir / "default" / "runs" / run_id / "manifest" / f"{DATABASE}.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["run_id"] == run_id and manifest["database"] == DATABASE
    counts = {t: n for n, t in (part.split(" ", 1) for part in first.split(", "))}
    assert manifest["entities"] == {t: int(n) for t, n in counts.items()}
    assert manifest["entities"]["Table"] > 0 and manifest["entities"]["Column"] > 0
    latest = json.loads((serve.output_dir / "default" / "latest" / f"{DATABASE}.json").read_text())
    assert latest["run_id"] == run_id

    # Ctrl-C, as a terminal sends it: SIGINT to the command's process group.
    serve.record()
    assert serve.postmaster and alive(*serve.postmaster)
    assert serve.server_dir.is_dir() and serve.home.is_dir()
    t_stop = time.monotonic()
    os.killpg(serve.proc.pid, signal.SIGINT)
    try:
        code = serve.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_TIMEOUT_S} s after SIGINT:\n{out.text()}")
    stop_s = time.monotonic() - t_stop
    out.drain()
    assert code == 0, out.text()
    assert "stopped the Dagster UI and removed the demo server" in out.text()
    assert "Traceback" not in out.text()

    # Nothing left: no process it started (zombies are being reaped by init: wait a little),
    # nothing in its process group, no process using its data dir or Dagster home, no dirs.
    deadline = time.monotonic() + 10
    while serve.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not serve.leftovers(), [
        Path(f"/proc/{p}/cmdline").read_bytes() for p in serve.leftovers()
    ]
    assert len(serve.seen) >= 6  # dagster dev, webserver, daemon, code servers, postmaster...
    with pytest.raises(ProcessLookupError):
        os.killpg(serve.proc.pid, 0)
    assert not mentioning(str(serve.server_dir), str(serve.home))
    assert not serve.server_dir.exists() and not serve.home.exists()
    assert serve.sockets and all(s.startswith(f"{serve.home}/") for s in serve.sockets)
    print(f"startup {startup_s:.1f} s, UI run {run_s:.1f} s, stop {stop_s:.1f} s")
