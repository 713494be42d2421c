"""The REST API over real HTTP: `pg-metadata serve` on loopback, in front of a real Dagster
webserver and daemon on a throwaway instance, the throwaway PostgreSQL cluster and loopback S3,
with every process exporting OpenTelemetry to a real OTLP receiver."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import requests

from pg_metadata_tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TOKEN = "api-token-0123456789abcdef"
SOURCE = "local"
CONNECTION_QN = "default/postgres/1700000011"
READER_ENV = "API_TEST_READER_PASSWORD"
RUN_TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """The served API and what it runs on."""

    url: str
    home: Path
    logs: Path
    bucket: str
    s3: Any
    rx: OtlpReceiver
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)  # every response, for the leak scan

    def call(self, method: str, path: str, token: str | None = TOKEN, **kw: Any):
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(method, self.url + path, headers=headers, timeout=60, **kw)
        self.bodies.append(response.text)
        return response

    def post(self, path: str, body: Any = None, **kw: Any):
        return self.call("POST", f"/workflows/v1{path}", json=body, **kw)

    def get(self, path: str, **kw: Any):
        return self.call("GET", f"/workflows/v1{path}", **kw)

    def wait_status(self, workflow_id: str, until: tuple[str, ...], timeout: float = RUN_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            data = self.get(f"/status/{workflow_id}").json()["data"]
            if data["status"] in until:
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"workflow still {data['status']}: {data}; {self.tail()}")
            time.sleep(0.5)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
            for p in sorted(self.logs.glob("*.log"))
        )


def _start(stack: Stack, name: str, args: list[str], env: dict[str, str]) -> None:
    log = open(stack.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    stack.procs[name] = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.3)
    raise AssertionError(f"{what} did not answer at {url} within {timeout:g}s")


@pytest.fixture(scope="module")
def stack(pg_cluster, catalog_db, s3_server, tmp_path_factory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("api")
    home, logs = base / "dagster_home", base / "logs"
    home.mkdir()
    logs.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    # create the SQLite storage once, here: the webserver and the daemon would both try at
    # start-up, and the loser of that race exits (UNIQUE constraint on alembic_version)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs_count()
        instance.all_instigator_state()
    sources = base / "sources.yaml"
    sources.write_text(
        f"""\
sources:
  - name: {SOURCE}
    host: {pg_cluster.host}
    port: {pg_cluster.port}
    user: {catalog_db.reader_user}
    password_env: {READER_ENV}
    database: {catalog_db.shop}
    sslmode: disable
    include: {{"^(shop|zoo)$": "*"}}
    connection_qualified_name: {CONNECTION_QN}
    retries: 0
"""
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    bucket = f"pgm-api-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    rx = OtlpReceiver().start()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "OTEL_", "AWS_", "DAGSTER_", "ATLAN_"))
    }
    env.update(
        DAGSTER_HOME=str(home),
        PG_METADATA_SOURCES=str(sources),
        PG_METADATA_OUTPUT=f"s3://{bucket}/catalog",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=s3_server,
        AWS_CONFIG_FILE=str(base / "aws_config_absent"),
        AWS_SHARED_CREDENTIALS_FILE=str(base / "aws_credentials_absent"),
        PYTHONUNBUFFERED="1",
        **{READER_ENV: catalog_db.reader_password},
        **rx.env("grpc"),
    )
    web_port, api_port = free_port(), free_port()
    stack = Stack(f"http://127.0.0.1:{api_port}", home, logs, bucket, s3, rx)
    workspace = str(ROOT / "workspace.yaml")
    try:
        _start(
            stack,
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(web_port),
            ],
            {**env, "OTEL_SERVICE_NAME": "pgm-webserver"},
        )
        _wait_http(
            f"http://127.0.0.1:{web_port}/server_info", stack.procs["webserver"], "the webserver"
        )
        _start(
            stack,
            "daemon",
            [str(BIN / "dagster-daemon"), "run", "-w", workspace],
            {**env, "OTEL_SERVICE_NAME": "pgm-runs"},
        )
        _start(
            stack,
            "api",
            [str(BIN / "pg-metadata"), "serve", "--port", str(api_port)],
            {
                **env,
                "PG_METADATA_API_TOKEN": TOKEN,
                "PG_METADATA_DAGSTER_URL": f"http://127.0.0.1:{web_port}",
                "OTEL_SERVICE_NAME": "pgm-api",
            },
        )
        _wait_http(f"{stack.url}/health", stack.procs["api"], "pg-metadata serve")
        yield stack
    finally:
        for proc in stack.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in stack.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        rx.stop()


def inline(catalog_db, pg_cluster, **changes: Any) -> dict[str, Any]:
    """Atlan's flat credential object for the reader role."""
    creds = {
        "host": pg_cluster.host,
        "port": pg_cluster.port,
        "authType": "basic",
        "username": catalog_db.reader_user,
        "password": catalog_db.reader_password,
        "extra": {"database": catalog_db.shop, "sslmode": "disable"},
    }
    creds.update(changes)
    return creds


# --- the door ---------------------------------------------------------------------------------


def test_health_is_open_and_everything_else_needs_the_token(stack: Stack):
    health = stack.call("GET", "/health", token=None)
    assert health.status_code == 200 and health.json() == {
        "success": True,
        "data": {"status": "ok"},
    }
    for method, path in [
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("POST", "/workflows/v1/auth"),
        ("GET", "/workflows/v1/status/pgm-x"),
    ]:
        for token in (None, "wrong-token-0123456789"):
            r = stack.call(method, path, token=token, json={"source": SOURCE})
            assert r.status_code == 401, (method, path, token, r.text)
            assert r.json()["success"] is False
            assert "bearer token" in r.json()["message"]
            assert r.headers["WWW-Authenticate"] == "Bearer"
    ready = stack.call("GET", "/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["data"]["status"] == "ready"
    assert stack.call("GET", "/docs", token=None).status_code == 200
    assert "/workflows/v1/start" in stack.call("GET", "/openapi.json", token=None).json()["paths"]


def test_non_loopback_bind_without_a_token_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PG_METADATA_API_TOKEN"}
    env["DAGSTER_HOME"] = str(tmp_path)
    result = subprocess.run(
        [str(BIN / "pg-metadata"), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0 without a token" in lines[0]
    assert "PG_METADATA_API_TOKEN" in lines[0]


# --- /auth, /metadata, /check -------------------------------------------------------------------


def test_auth_accepts_a_source_flat_and_list_credentials(stack: Stack, catalog_db, pg_cluster):
    by_name = stack.post("/auth", {"source": SOURCE})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["data"]["user"] == catalog_db.reader_user
    flat = stack.post("/auth", inline(catalog_db, pg_cluster))  # Atlan's UI posts it bare
    assert flat.status_code == 200, flat.text
    assert flat.json()["message"] == "Authentication successful"
    pairs = [{"key": k, "value": v} for k, v in inline(catalog_db, pg_cluster).items()]
    listed = stack.post("/auth", {"credentials": pairs})
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"]["server_version"].startswith("15")


def test_auth_failures_are_one_line_401s_without_the_secret(stack: Stack, catalog_db, pg_cluster):
    wrong = stack.post(
        "/auth", {"credentials": inline(catalog_db, pg_cluster, password="nope-pw-731")}
    )
    assert wrong.status_code == 401
    message = wrong.json()["message"]
    assert "password authentication failed" in message and "\n" not in message
    assert "nope-pw-731" not in wrong.text
    down = stack.post("/auth", {"credentials": inline(catalog_db, pg_cluster, port=1)})
    assert down.status_code == 401 and "cannot connect" in down.json()["message"]


def test_metadata_lists_every_connectable_database_and_schema(stack: Stack, catalog_db, pg_cluster):
    r = stack.post("/metadata", {"credentials": inline(catalog_db, pg_cluster)})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert all(set(row) == {"TABLE_CATALOG", "TABLE_SCHEMA"} for row in rows)
    catalogs = {row["TABLE_CATALOG"] for row in rows}
    assert {catalog_db.shop, catalog_db.zoo} <= catalogs
    assert catalog_db.crm not in catalogs  # no CONNECT for the reader
    assert {"TABLE_CATALOG": catalog_db.shop, "TABLE_SCHEMA": "public"} in rows
    assert not any(row["TABLE_SCHEMA"].startswith("pg_") for row in rows)


def test_check_of_the_source_is_ready(stack: Stack):
    r = stack.post("/check", {"source": SOURCE})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["preflight"]["status"] == "ready", data
    names = [c["name"] for c in data["preflight"]["checks"]]
    assert {
        "credentials",
        "version",
        "filters",
        "databaseSchema",
        "connect",
        "snapshotExport",
        "tables",
        "output",
    } <= set(names)
    assert names[0] == "credentials"
    assert {"dagsterInstance", "dagsterWebserver"} <= set(names)
    assert data["tablesCheck"]["success"] is True
    assert "Table count:" in data["tablesCheck"]["successMessage"]
    assert stack.bucket in data["outputCheck"]["successMessage"]


def test_check_says_what_is_missing(stack: Stack, catalog_db, pg_cluster):
    body = {
        "credentials": inline(catalog_db, pg_cluster),
        "metadata": {
            "include-filter": json.dumps({"^nosuchdb$": "*", "^crm$": "*", "^shop$": ["^nosuch$"]})
        },
    }
    r = stack.post("/check", body)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["preflight"]["status"] == "not_ready"
    failed = {c["name"]: c["message"] for c in data["preflight"]["checks"] if not c["passed"]}
    assert "databaseSchema" in failed
    assert "nosuchdb" in failed["databaseSchema"] and "nosuch" in failed["databaseSchema"]
    assert data["error"].startswith("Preflight check failed:")
    assert r.json()["message"] == data["error"]


# --- malformed requests -----------------------------------------------------------------------


def test_malformed_bodies_are_422_naming_the_field_never_the_value(
    stack: Stack, catalog_db, pg_cluster
):
    cases = [
        ({"credentials": inline(catalog_db, pg_cluster, port="not-a-port")}, "port"),
        ({"credentials": inline(catalog_db, pg_cluster, authType="kerberos")}, "authType"),
        ({}, "either source"),
        ({"source": "nosuch"}, "not a configured source"),
        (
            {
                "credentials": inline(catalog_db, pg_cluster),
                "metadata": {"include-filter": "{not json"},
            },
            "include",
        ),
    ]
    for body, needle in cases:
        r = stack.post("/auth", body)
        assert r.status_code == 422, (body, r.text)
        assert needle in r.json()["message"], r.json()
        assert catalog_db.reader_password not in r.text
    start = stack.post("/start", {"source": SOURCE, "credentials": inline(catalog_db, pg_cluster)})
    assert start.status_code == 422 and "configured sources only" in start.json()["message"]
    assert catalog_db.reader_password not in start.text
    not_json = stack.call(
        "POST",
        "/workflows/v1/auth",
        data=b"{oops",
        headers={"Content-Type": "application/json"},
    )
    assert not_json.status_code == 422
    huge = stack.post("/auth", {"source": SOURCE, "pad": "x" * (2 << 20)})
    assert huge.status_code == 413 and "request body over" in huge.json()["message"]


def test_unknown_workflows_are_404(stack: Stack):
    for method, path in [
        ("GET", "/status/pgm-nosuch"),
        ("GET", "/status/pgm-nosuch/run-x"),
        ("POST", "/stop/pgm-nosuch"),
        ("GET", "/config/pgm-nosuch"),
        ("POST", "/config/pgm-nosuch"),
    ]:
        r = stack.call(method, f"/workflows/v1{path}", json={} if method == "POST" else None)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == {
            "success": False,
            "data": None,
            "message": "no workflow " + path.split("/", 2)[2],
        }
    assert stack.call("GET", "/nowhere").status_code == 404


# --- start, follow, stop ----------------------------------------------------------------------


def test_start_status_success_and_the_output_validates(stack: Stack, catalog_db):
    r = stack.post(
        "/start",
        {
            "source": SOURCE,
            "databases": [catalog_db.shop],
            "connection": {"connection_qualified_name": CONNECTION_QN},
        },
    )
    assert r.status_code == 200, r.text
    started = r.json()["data"]
    workflow_id = started["workflow_id"]
    assert workflow_id.startswith("pgm-") and started["run_ids"]

    done = stack.wait_status(workflow_id, ("success", "failure", "canceled"))
    assert done["status"] == "success", done
    shop = done["databases"][catalog_db.shop]
    assert shop["status"] == "success"
    assert shop["entities"]["Table"] == 16 and shop["entities"]["Database"] == 1
    assert done["execution_duration_seconds"] > 0
    steps = [run["step"] for run in done["runs"]]
    assert steps.count("extract") == 1 and set(steps) <= {"discover", "extract"}

    # the manifest it names is on S3, and the files it lists hold exactly the counted entities
    assert shop["manifest"].startswith(f"s3://{stack.bucket}/catalog/")
    key = shop["manifest"].split("/", 3)[3]
    manifest = json.loads(stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    assert manifest["entities"] == shop["entities"]
    counted: dict[str, int] = {}
    for file in manifest["files"]:
        if file["path"].startswith("transformed/"):
            obj_key = file["uri"].split("/", 3)[3]
            lines = (
                stack.s3.get_object(Bucket=stack.bucket, Key=obj_key)["Body"].read().splitlines()
            )
            for line in lines:
                entity = json.loads(line)
                assert entity["attributes"]["connectionQualifiedName"] == CONNECTION_QN
                counted[entity["typeName"]] = counted.get(entity["typeName"], 0) + 1
    assert counted == {t: n for t, n in manifest["entities"].items() if n}

    one = stack.get(f"/status/{workflow_id}/{shop.get('run_id') or done['runs'][-1]['run_id']}")
    assert one.status_code == 200 and one.json()["data"]["status"] == "success"

    config = stack.get(f"/config/{workflow_id}").json()["data"]
    assert config == {
        "workflow_id": workflow_id,
        "source": SOURCE,
        "databases": [catalog_db.shop],
        "metadata": {"include-filter": None, "exclude-filter": None, "temp-table-regex": None},
    }
    updated = stack.post(f"/config/{workflow_id}", {"metadata": {"temp-table-regex": "^tmp_"}})
    assert updated.status_code == 200, updated.text
    assert (
        stack.get(f"/config/{workflow_id}").json()["data"]["metadata"]["temp-table-regex"]
        == "^tmp_"
    )
    bad = stack.post(f"/config/{workflow_id}", {"metadata": {"temp-table-regex": "[a-"}})
    assert bad.status_code == 422

    # the API's follower counts a workflow's runs on its next poll (every 0.5 s) after they end
    finished = f'pg_metadata_runs_finished_total{{source="{SOURCE}",status="success"}}'
    deadline = time.monotonic() + 10
    metrics = stack.call("GET", "/metrics").text
    while finished not in metrics and time.monotonic() < deadline:
        time.sleep(0.2)
        metrics = stack.call("GET", "/metrics").text
    assert finished in metrics
    assert f'pg_metadata_entities_written_total{{source="{SOURCE}",type="Table"}} 16.0' in metrics
    assert "pg_metadata_extraction_duration_seconds_count" in metrics
    assert (
        'pg_metadata_api_requests_total{method="POST",route="/workflows/v1/start",status="200"}'
        in metrics
    )

    # telemetry: the API's workflow span is the root of the runs' spans, across processes
    rx = stack.rx
    root = rx.wait_for(
        lambda r: [
            s
            for s in r.find_all("pg_metadata.workflow")
            if s["attributes"].get("pg_metadata.workflow_id") == workflow_id
        ],
        timeout=30,
        what="the workflow span",
    )[0]
    assert root["resource"]["service.name"] == "pgm-api"
    trace = rx.wait_for(
        lambda r: (
            [
                s
                for s in r.spans()
                if s["trace_id"] == root["trace_id"] and s["name"] == "pg_metadata.manifest"
            ]
            and [s for s in r.spans() if s["trace_id"] == root["trace_id"]]
        ),
        timeout=30,
        what="the run's spans under the workflow",
    )
    runs = [s for s in trace if s["name"] == "pg_metadata.run"]
    assert {s["parent_span_id"] for s in runs} == {root["span_id"]}
    assert {s["resource"]["service.name"] for s in runs} == {"pgm-runs"}
    assert {s["attributes"]["dagster.run_id"] for s in runs} == set(
        r["run_id"] for r in done["runs"]
    )
    names = {s["name"] for s in trace}
    assert {"pg_metadata.read_catalog", "pg_metadata.query", "pg_metadata.write"} <= names
    requests_spans = [
        s
        for s in rx.spans()
        if s["resource"].get("service.name") == "pgm-api"
        and s["name"].startswith("POST /workflows/v1/start")
    ]
    assert requests_spans, rx.summary()


def test_stop_cancels_a_running_workflow(stack: Stack, catalog_db):
    r = stack.post("/start", {"source": SOURCE, "databases": [catalog_db.zoo]})
    assert r.status_code == 200, r.text
    workflow_id = r.json()["data"]["workflow_id"]
    stack.wait_status(workflow_id, ("running", "success", "failure"), timeout=120)
    stopped = stack.post(f"/stop/{workflow_id}")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["data"]["workflow_id"] == workflow_id
    done = stack.wait_status(workflow_id, ("canceled", "success", "failure"), timeout=120)
    assert done["status"] == "canceled", done
    # nothing launched after the stop, and a stop of a stopped workflow changes nothing
    time.sleep(2)
    again = stack.get(f"/status/{workflow_id}").json()["data"]
    assert again["status"] == "canceled" and len(again["runs"]) == len(done["runs"])


def test_secrets_appear_nowhere(stack: Stack, catalog_db):
    """The reader's password and the API token: not in responses, logs, or the instance."""
    secrets = [catalog_db.reader_password, TOKEN]
    for body in stack.bodies:
        for secret in secrets:
            assert secret not in body
    for log in stack.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, log.name
    for path in stack.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path
    telemetry = json.dumps([stack.rx.spans(), stack.rx.logs(), stack.rx.metrics()], default=str)
    for secret in secrets:
        assert secret not in telemetry
