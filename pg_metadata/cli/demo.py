"""`pg-metadata demo`: the built-in default, a throwaway server with a small shop catalog.

Without options it extracts the demo catalog headless; with `--serve` it keeps the server
running, registers its databases and starts the Dagster UI on it, so materializing from the UI
works on a machine with no PostgreSQL of its own. Ctrl-C stops the UI and removes the server.

Stopping: SIGINT (Ctrl-C), SIGTERM and SIGHUP all end the command the same way, whatever the
parent left them set to (a shell's background job starts with SIGINT ignored). `dagster dev`
runs in its own process group, so a terminal's Ctrl-C reaches only this process, which then
stops the UI exactly once: SIGINT to `dagster dev` (it shuts its webserver, daemon and code
servers down), then SIGKILL to whatever is left of that process group (e.g. a run still going).
A second signal skips the wait. Then the PostgreSQL server is stopped and every temp dir removed.
Exit status: 0 when the UI was up and was stopped by a signal (the documented way to end
`--serve`), 130 when interrupted before the UI was up, 1 when `dagster dev` died on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import FrameType

from pg_metadata.errors import ConfigError

DEMO_USER = DEMO_PASSWORD = "demo"  # the throwaway server's own credentials
DEMO_DATABASE = "demo_shop"
UI_HOST = "127.0.0.1"
UI_STOP_TIMEOUT_S = 60  # dagster dev's own shutdown; it waits up to 30 s per service
GROUP_EXIT_GRACE_S = 10  # then what is left of its process group is killed
# Inherited variables the demo keeps; every other PG*, PG_METADATA_* or ATLAN_* variable describes
# a source (or libpq defaults such as PGSERVICE) and must not leak into the demo's own source.
KEPT_VARIABLES = frozenset(
    {
        "PG_METADATA_EXECUTOR",
        "PG_METADATA_AUTOMATION",
        "PG_METADATA_BROWSE_OBJECTS",
        "PG_METADATA_BROWSE_MAX",
    }
)
WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def demo(args: argparse.Namespace) -> int:
    """Extract the demo catalog, or serve it in the Dagster UI with --serve."""
    from pg_metadata.demo.throwaway import ThrowawayServer

    if getattr(args, "api_port", None) and not args.serve:
        raise ConfigError("--api-port serves the REST API next to the UI: add --serve")
    if args.serve:
        check_port_free(args.port)
        if getattr(args, "api_port", None):
            check_port_free(args.api_port, "the REST API", "--api-port")
    for name in [n for n in os.environ if describes_source(n)]:
        del os.environ[name]  # this process connects too (libpq reads PGSERVICE and co.)
    with StopSignals() as signals:
        print("pg-metadata: starting a throwaway PostgreSQL server with the demo catalog...")
        server = ThrowawayServer(admin_user=DEMO_USER, admin_password=DEMO_PASSWORD).start()
        workdir = server.workdir
        try:
            print(
                f"pg-metadata: demo server on {server.host}:{server.port} (files in {workdir})",
                flush=True,
            )
            load_demo_catalog(server.host, server.port)
            env = demo_env(server.host, server.port)
            if args.serve:
                code = serve(env, args.output, args.port, args.verbose, signals, args.api_port)
            else:
                code = extract_demo(env, args.output, args.verbose)
        finally:
            signals.disarm()  # a signal from now on must not interrupt the clean-up
            server.stop()
        if args.serve:
            gone = workdir is None or not workdir.exists()
            print(
                "pg-metadata: stopped the Dagster UI and "
                + ("removed the demo server" if gone else f"could not remove {workdir}"),
                flush=True,
            )
    return code


def extract_demo(env: dict[str, str], output: str | None, verbose: bool) -> int:
    """The headless demo: one `pg-metadata extract` of the demo server, in this process."""
    from pg_metadata.cli.extract import extract
    from pg_metadata.cli.main import build_parser

    os.environ.update(env)
    extract_args = ["extract", "--retries", "0"]
    extract_args += ["--output", output] if output else []
    extract_args += ["--verbose"] if verbose else []
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


def describes_source(name: str) -> bool:
    """Whether an inherited variable must not reach the demo.

    A PG_METADATA_EXCLUDE, PG_METADATA_AUTH=iam_role or PGSERVICE of the user's shell would
    otherwise apply to the demo server; a DAGSTER_HOME would receive the demo's runs.
    """
    if name in KEPT_VARIABLES:
        return False
    return name.startswith(("PG", "ATLAN_")) or name == "DAGSTER_HOME"


def hermetic_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without anything describing another source, plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not describes_source(k)}, **env}


def serve(
    env: dict[str, str],
    output: str | None,
    port: int,
    verbose: bool,
    signals: StopSignals,
    api_port: int | None = None,
) -> int:
    """Register the demo databases, then run the Dagster UI (and the REST API on `api_port`)
    on them until a stop signal."""
    from pg_metadata.output.storage import DEFAULT_TARGET

    target = output or DEFAULT_TARGET
    if "://" not in target:  # the UI's processes and the first extract must agree on the folder
        target = str(Path(target).resolve())
    home = Path(tempfile.mkdtemp(prefix="pg_metadata_demo_home_"))
    (home / "tmp").mkdir()
    run_env = {**hermetic_env(env), "DAGSTER_HOME": str(home), "PG_METADATA_OUTPUT": target}
    # Dagster's temp files (workspace file, code-server sockets) go into the home too, so they
    # are removed with it even when a process had to be killed.
    run_env["TMPDIR"] = str(home / "tmp")
    ui: subprocess.Popen | None = None
    api: subprocess.Popen | None = None
    try:
        (home / "dagster.yaml").write_text(
            (resources.files("pg_metadata.demo") / "dagster.yaml").read_text("utf-8")
        )
        print(f"pg-metadata: Dagster home {home}; output {target}", flush=True)
        # Extract once first: the UI opens on a registered partition and a complete output.
        # A failure is shown and the UI still starts: its run page has the whole log.
        first = subprocess.run(
            [sys.executable, "-m", "pg_metadata.cli.main", "extract", *(["-v"] if verbose else [])],
            env=run_env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if first.returncode != 0:
            print("pg-metadata: the first extraction failed; see its run in the UI", flush=True)
        print("pg-metadata: starting the Dagster UI (dagster dev)...", flush=True)
        ui = start_ui(run_env, port, verbose)
        if not wait_until_ready(ui, port):
            print(f"pg-metadata: error: dagster dev exited ({ui.returncode})", file=sys.stderr)
            return 1
        if api_port:
            api = start_api(run_env, port, api_port, verbose)
        print(
            f"pg-metadata: Dagster UI on http://{UI_HOST}:{port} (source 'default', database "
            f"{DEMO_DATABASE!r}); Ctrl-C stops the UI and the server",
            flush=True,
        )
        try:
            code = ui.wait()
        except KeyboardInterrupt:
            print("pg-metadata: stopping the Dagster UI and the demo server...", flush=True)
            return 0
        print(f"pg-metadata: error: dagster dev exited on its own ({code})", file=sys.stderr)
        return 1
    finally:
        signals.disarm()
        if api is not None:
            stop_api(api)
        if ui is not None:
            stop_ui(ui, signals)
        shutil.rmtree(home, ignore_errors=True)
        if home.exists():
            print(f"pg-metadata: warning: could not remove {home}", file=sys.stderr)


def ui_command(port: int, verbose: bool) -> list[str]:
    """The `dagster dev` command line of the demo UI."""
    level = "info" if verbose else "warning"
    args = f"-m dagster dev -m pg_metadata.definitions -h {UI_HOST} -p {port} --log-level {level}"
    return [sys.executable, *args.split()]


def start_ui(
    env: dict[str, str], port: int, verbose: bool, stdout: int | None = None
) -> subprocess.Popen:
    """`dagster dev` on the demo, in its own process group (see the module docstring)."""
    return subprocess.Popen(
        ui_command(port, verbose),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        process_group=0,
        preexec_fn=_interrupt_when_parent_dies(),
    )


def start_api(env: dict[str, str], ui_port: int, port: int, verbose: bool) -> subprocess.Popen:
    """`pg-metadata serve` on the demo's instance, launching runs through its UI."""
    command = [sys.executable, "-m", "pg_metadata.cli.main", "serve", "--port", str(port)]
    return subprocess.Popen(
        [*command, *(["-v"] if verbose else [])],
        env={**env, "PG_METADATA_DAGSTER_URL": f"http://{UI_HOST}:{ui_port}"},
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=_interrupt_when_parent_dies(),
    )


def stop_api(api: subprocess.Popen) -> None:
    """SIGINT (uvicorn's graceful stop), then SIGKILL after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        api.send_signal(signal.SIGINT)
    try:
        api.wait(timeout=10)
    except subprocess.TimeoutExpired:
        api.kill()
        api.wait()


def _interrupt_when_parent_dies() -> Callable[[], None] | None:
    """For the child: SIGINT when this process dies, even by SIGKILL (Linux PR_SET_PDEATHSIG),
    so `dagster dev` still shuts its services down."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGINT)


def wait_until_ready(ui: subprocess.Popen, port: int) -> bool:
    """Wait until the webserver answers and has loaded the code location; False if it exited."""
    url = f"http://{UI_HOST}:{port}/graphql"
    body = json.dumps({"query": WORKSPACE_QUERY}).encode()
    while ui.poll() is None:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                data = json.load(response).get("data") or {}
        except (OSError, ValueError):  # not listening yet, or not answering GraphQL yet
            data = {}
        entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            for entry in entries:
                loaded = entry.get("locationOrLoadError") or {}
                if loaded.get("__typename") == "PythonError":
                    first_line = (loaded.get("message") or "").strip().splitlines()[:1]
                    print(
                        f"pg-metadata: warning: code location {entry['name']} failed to load: "
                        f"{''.join(first_line)}",
                        file=sys.stderr,
                    )
            return True
        time.sleep(0.5)
    return False


def stop_ui(ui: subprocess.Popen, signals: StopSignals) -> None:
    """Stop dagster dev and everything in its process group; returns when all are gone."""
    handled = signals.count
    if ui.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            ui.send_signal(signal.SIGINT)
        deadline = time.monotonic() + UI_STOP_TIMEOUT_S
        while ui.poll() is None and time.monotonic() < deadline and signals.count <= handled:
            time.sleep(0.1)
    # Its code servers exit right after it; a run still going would not.
    deadline = time.monotonic() + (GROUP_EXIT_GRACE_S if ui.poll() is not None else 0)
    while _group_alive(ui.pid) and time.monotonic() < deadline and signals.count <= handled:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ui.pid, signal.SIGKILL)
    ui.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_port_free(port: int, what: str = "the Dagster UI", option: str = "--port") -> None:
    """Fail before starting anything when a port to serve on is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the webserver binds
        try:
            sock.bind((UI_HOST, port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} on {UI_HOST} is not available for {what} ({exc.strerror}); "
                f"choose another with {option}"
            ) from None


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once; later ones are only counted.

    Installed explicitly, so a process started with SIGINT ignored can still be stopped, and
    so that a second Ctrl-C never interrupts the clean-up (it only makes it skip waiting).
    """

    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
    )

    def __init__(self) -> None:
        self.count = 0
        self.armed = True
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def disarm(self) -> None:
        """From now on a signal does not raise."""
        self.armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
