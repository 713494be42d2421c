"""OpenTelemetry of a CLI extract, received by a real OTLP receiver over gRPC and HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pg_metadata_tests.integration.cli.conftest import pg_metadata
from pg_metadata_tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration


@pytest.fixture
def env(reader_env) -> dict[str, str]:
    return reader_env


def extract(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return pg_metadata(["extract", "--include", '{"^shop$": "*"}', "--output", "out"], env, cwd)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_cli_extract_exports_its_span_tree_metrics_and_logs(env, catalog_db, tmp_path, protocol):
    with OtlpReceiver() as rx:
        env = {
            **env,
            **rx.env(protocol),
            "OTEL_SERVICE_NAME": "pgm-cli-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        }
        result = extract(env, tmp_path)
        assert result.returncode == 0, result.stderr
        # the CLI flushed before it exited: everything is already here
        manifest = json.loads((tmp_path / "out/default/latest/shop.json").read_text())
        spans = rx.spans()
        tree = rx.span_tree()

        roots = [s for s in spans if not s["parent_span_id"]]
        assert [r["name"] for r in roots] == ["pg_metadata.extract"], tree
        root = roots[0]
        assert {s["trace_id"] for s in spans} == {root["trace_id"]}, tree
        assert {s["protocol"] for s in spans} == {protocol.split("/")[0]}
        assert root["resource"]["service.name"] == "pgm-cli-test"
        assert root["resource"]["deployment.environment"] == "test"

        # the filter regexes are compiled on the server first, then the source runs
        first, source = rx.children(root)
        assert first["name"] == "pg_metadata.connect", tree
        assert source["name"] == "pg_metadata.source"
        assert source["attributes"]["pg_metadata.source"] == "default"
        databases = [c for c in rx.children(source) if c["name"] == "pg_metadata.database"]
        assert [d["attributes"]["db.namespace"] for d in databases] == ["shop"], tree
        (run,) = [c for c in rx.children(databases[0]) if c["name"] == "pg_metadata.run"]
        assert run["attributes"]["dagster.run_id"] == manifest["run_id"]
        assert run["attributes"]["pg_metadata.source"] == "default"

        names = Counter(s["name"] for s in spans)
        for phase in (
            "pg_metadata.connect",
            "pg_metadata.read_catalog",
            "pg_metadata.query",
            "pg_metadata.write",
            "pg_metadata.checks",
            "pg_metadata.lineage",
            "pg_metadata.manifest",
        ):
            assert names[phase] >= 1, (phase, tree)
        queries = rx.find_all("pg_metadata.query")
        by_query = {q["attributes"]["pg_metadata.query"]: q["attributes"] for q in queries}
        assert by_query["columns"]["pg_metadata.rows"] == manifest["entities"]["Column"]
        writes = rx.find_all("pg_metadata.write")
        assert all(
            w["attributes"]["pg_metadata.bytes"] > 0
            for w in writes
            if w["attributes"]["pg_metadata.rows"]
        ), tree
        assert all(s["status_code"] != 2 for s in spans), tree  # nothing failed

        # metrics: the entities counted as written are the manifest's, type by type
        def entity_totals(r: OtlpReceiver) -> dict[str, int]:
            last: dict[str, int] = {}
            for point in r.metrics():
                if point["name"] == "pg_metadata.entities_written":
                    last[point["attributes"]["pg_metadata.entity_type"]] = point["value"]
            return last

        written = {t: n for t, n in entity_totals(rx).items() if n}
        assert written == {t: n for t, n in manifest["entities"].items() if n}, written
        metric_names = {m["name"] for m in rx.metrics()}
        assert {
            "pg_metadata.catalog_rows",
            "pg_metadata.bytes_written",
            "pg_metadata.phase.duration",
        } <= metric_names

        # logs carry the trace they were written in
        logs = rx.logs()
        assert logs, rx.summary()
        assert all(r["trace_id"] == root["trace_id"] for r in logs if r["trace_id"])
        bodies = [str(r["body"]) for r in logs]
        assert any("manifest" in b and "shop" in b for b in bodies), bodies
        everything = json.dumps([spans, rx.metrics(), logs], default=str)
        assert catalog_db.reader_password not in everything


def test_no_endpoint_means_no_export_and_no_sdk(env, tmp_path):
    """Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported (and the SDK is never loaded)."""
    with OtlpReceiver() as rx:
        env = {**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        result = extract(env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert rx.exports() == []
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pg_metadata import telemetry; "
            "print(telemetry.setup(), 'opentelemetry.sdk' in sys.modules)",
        ],
        env={**env, "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.split() == ["False", "False"], probe.stderr
