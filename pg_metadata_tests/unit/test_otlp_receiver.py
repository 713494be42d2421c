"""The loopback OTLP receiver, fed by the real OpenTelemetry SDK exporters over real sockets."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from pg_metadata_tests.otlp_receiver import OtlpReceiver

PROTOCOLS = ["grpc", "http/protobuf"]
SCOPE = "otlp-receiver-test"
SERVICE = "otlp-receiver-test-service"
RECEIVER_THREADS = ("otlp-receiver", "(_serve)", "(process_request_thread)")  # Thread-N (target)


def _receiver_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if any(k in t.name for k in RECEIVER_THREADS)]


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the surrounding shell may steer the exporters."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    """A running receiver; afterwards, its servers and threads must be gone."""
    assert not _receiver_threads(), "a receiver of an earlier test is still running"
    receiver = OtlpReceiver()
    with receiver:
        yield receiver
    deadline = time.monotonic() + 2
    while _receiver_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _receiver_threads(), f"threads left running: {_receiver_threads()}"


@dataclass
class Pipeline:
    """SDK providers (not installed globally) exporting to the receiver."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider

    def flush_and_shutdown(self) -> None:
        """Push everything out, then stop the processors, readers and exporters."""
        assert self.tracer_provider.force_flush(5000)
        assert self.logger_provider.force_flush(5000)
        assert self.meter_provider.force_flush(5000)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def _exporters(rx: OtlpReceiver, protocol: str, **kwargs: Any) -> tuple[Any, Any, Any]:
    if protocol == "grpc":
        kw = {"endpoint": rx.grpc_endpoint, "insecure": True, **kwargs}
        return GrpcSpanExporter(**kw), GrpcMetricExporter(**kw), GrpcLogExporter(**kw)
    base = rx.http_endpoint  # the constructor argument is the full URL, signal path included
    return (
        HttpSpanExporter(endpoint=f"{base}/v1/traces", **kwargs),
        HttpMetricExporter(endpoint=f"{base}/v1/metrics", **kwargs),
        HttpLogExporter(endpoint=f"{base}/v1/logs", **kwargs),
    )


def _pipeline(span_exporter: Any, metric_exporter: Any, log_exporter: Any) -> Pipeline:
    resource = Resource.create({"service.name": SERVICE})
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader], shutdown_on_exit=False
    )
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    return Pipeline(tracer_provider, meter_provider, logger_provider)


def _emit(pipeline: Pipeline) -> dict[str, str]:
    """Parent span > child span (attributes, a counter, a log, an exception); returns the ids."""
    tracer = pipeline.tracer_provider.get_tracer(SCOPE)
    counter = pipeline.meter_provider.get_meter(SCOPE).create_counter(
        "test.rows", unit="{row}", description="rows seen"
    )
    logger = pipeline.logger_provider.get_logger(SCOPE)
    child_attributes = {"table.count": 3, "ratio": 0.5, "cached": False, "tables": ["a", "b"]}
    with (
        tracer.start_as_current_span("parent", attributes={"db.system": "postgresql"}) as parent,
        pytest.raises(ValueError, match="boom"),  # escapes the child only
        tracer.start_as_current_span("child", attributes=child_attributes) as child,
    ):
        counter.add(3, {"schema": "public"})
        counter.add(4, {"schema": "public"})
        logger.emit(
            body="extracting orders",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"table": "orders"},
        )
        raise ValueError("boom")
    return {
        "trace_id": format(parent.get_span_context().trace_id, "032x"),
        "parent_id": format(parent.get_span_context().span_id, "016x"),
        "child_id": format(child.get_span_context().span_id, "016x"),
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_exporters_deliver_spans_metrics_and_logs(rx: OtlpReceiver, protocol: str) -> None:
    """Real SDK exporters -> real sockets -> decoded, flattened, tagged with the protocol."""
    wire = "grpc" if protocol == "grpc" else "http"
    pipeline = _pipeline(*_exporters(rx, protocol))
    ids = _emit(pipeline)
    pipeline.flush_and_shutdown()

    spans = rx.wait_for(lambda r: len(r.spans()) >= 2 and r.spans(), what="two spans")
    assert sorted(s["name"] for s in spans) == ["child", "parent"]
    parent, child = rx.find("parent"), rx.find("child")
    assert parent["trace_id"] == child["trace_id"] == ids["trace_id"]
    assert (parent["span_id"], child["span_id"]) == (ids["parent_id"], ids["child_id"])
    assert parent["parent_span_id"] == ""
    assert child["parent_span_id"] == parent["span_id"]
    assert rx.children(parent) == [child]
    assert rx.children(child) == []
    assert parent["start_ns"] <= child["start_ns"] <= child["end_ns"] <= parent["end_ns"]
    assert child["kind"] == 1  # SPAN_KIND_INTERNAL on the wire (SDK SpanKind.INTERNAL is 0)
    assert child["attributes"] == {
        "table.count": 3,
        "ratio": 0.5,
        "cached": False,
        "tables": ["a", "b"],
    }
    assert (child["status_code"], child["status_message"]) == (2, "ValueError: boom")
    assert parent["status_code"] == 0  # the exception did not escape the parent
    [event] = child["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "boom"
    assert "raise ValueError" in event["attributes"]["exception.stacktrace"]
    assert child["resource"]["service.name"] == SERVICE
    assert child["scope"] == SCOPE

    points = rx.wait_for(
        lambda r: [m for m in r.metrics() if m["name"] == "test.rows"], what="test.rows"
    )
    point = points[-1]  # cumulative temporality: the last point holds the total
    assert point["value"] == 7
    assert isinstance(point["value"], int)
    assert (point["kind"], point["unit"], point["monotonic"]) == ("sum", "{row}", True)
    assert point["attributes"] == {"schema": "public"}
    assert point["resource"]["service.name"] == SERVICE
    assert point["scope"] == SCOPE
    assert point["time_ns"] > 0

    [log] = rx.wait_for(lambda r: r.logs(), what="the log record")
    assert log["body"] == "extracting orders"
    assert (log["severity_text"], log["severity_number"]) == ("WARN", SeverityNumber.WARN.value)
    assert log["trace_id"] == ids["trace_id"]
    assert log["span_id"] == ids["child_id"]
    assert log["attributes"] == {"table": "orders"}
    assert (log["resource"]["service.name"], log["scope"]) == (SERVICE, SCOPE)
    assert log["time_ns"] > 0

    items = rx.spans() + rx.metrics() + rx.logs()
    assert {i["protocol"] for i in items} == {wire}
    assert {e["protocol"] for e in rx.exports()} == {wire}
    assert {e["signal"] for e in rx.exports()} == {"traces", "metrics", "logs"}

    tree = rx.span_tree().splitlines()
    assert tree[0].startswith("parent (") and "db.system=postgresql" in tree[0]
    assert tree[1].startswith("  child (") and "ERROR 'ValueError: boom'" in tree[1]
    assert "table.count=3" in tree[1]

    rx.clear()
    assert rx.spans() == rx.metrics() == rx.logs() == rx.exports() == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_env_points_an_unconfigured_sdk_at_the_receiver(
    rx: OtlpReceiver, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exporters and processors built without arguments follow ``env()``, quick intervals too."""
    for key, value in rx.env(protocol).items():
        monkeypatch.setenv(key, value)
    if protocol == "grpc":
        exporters: tuple[Any, Any, Any] = (
            GrpcSpanExporter(),
            GrpcMetricExporter(),
            GrpcLogExporter(),
        )
    else:
        exporters = (HttpSpanExporter(), HttpMetricExporter(), HttpLogExporter())
    pipeline = _pipeline(*exporters)
    try:
        tracer = pipeline.tracer_provider.get_tracer(SCOPE)
        with tracer.start_as_current_span("from-env"):
            pipeline.meter_provider.get_meter(SCOPE).create_counter("env.hits").add(1)
            pipeline.logger_provider.get_logger(SCOPE).emit(body={"k": [1, 2.5, "x", True]})
        # no force_flush: OTEL_BSP/BLRP_SCHEDULE_DELAY and OTEL_METRIC_EXPORT_INTERVAL do it
        rx.wait_for(lambda r: r.find_all("from-env"), timeout=5, what="the span")
        rx.wait_for(lambda r: r.logs(), timeout=5, what="the log")
        hits = rx.wait_for(
            lambda r: [m for m in r.metrics() if m["name"] == "env.hits"], timeout=5, what="hits"
        )
    finally:
        pipeline.flush_and_shutdown()
    assert hits[0]["value"] == 1
    assert rx.logs()[0]["body"] == {"k": [1, 2.5, "x", True]}
    wire = "grpc" if protocol == "grpc" else "http"
    assert {e["protocol"] for e in rx.exports()} == {wire}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gzip_compressed_exports_are_decoded(rx: OtlpReceiver, protocol: str) -> None:
    """Both exporters' gzip compression reaches the receiver as readable data."""
    compression = grpc.Compression.Gzip if protocol == "grpc" else HttpCompression.Gzip
    pipeline = _pipeline(*_exporters(rx, protocol, compression=compression))
    ids = _emit(pipeline)
    pipeline.flush_and_shutdown()
    assert rx.find("child")["parent_span_id"] == ids["parent_id"]
    assert rx.logs()[0]["trace_id"] == ids["trace_id"]
    if protocol == "http/protobuf":  # gRPC decompresses below the servicer, invisibly
        assert {e["compression"] for e in rx.exports()} == {"gzip"}


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_http_endpoint_speaks_otlp_http(rx: OtlpReceiver) -> None:
    """Gzip bodies are accepted; wrong paths, media types and bodies get OTLP error replies."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "hand-made"
    record.trace_id = bytes(range(16))
    protobuf = {"Content-Type": "application/x-protobuf"}
    url = f"{rx.http_endpoint}/v1/logs"

    status, content_type, body = _post(
        url, gzip.compress(request.SerializeToString()), {**protobuf, "Content-Encoding": "gzip"}
    )
    assert (status, content_type) == (200, "application/x-protobuf")
    assert body == logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
    [log] = rx.logs()
    assert (log["body"], log["trace_id"], log["span_id"]) == (
        "hand-made",
        bytes(range(16)).hex(),
        "",
    )
    assert log["protocol"] == "http"

    status, _, body = _post(f"{rx.http_endpoint}/v1/nothing", b"", protobuf)
    assert status == 404
    assert "/v1/nothing" in status_pb2.Status.FromString(body).message
    assert _post(url, b"{}", {"Content-Type": "application/json"})[0] == 415
    assert _post(url, b"\xff\xff\xff", protobuf)[0] == 400
    assert _post(url, b"not gzip", {**protobuf, "Content-Encoding": "gzip"})[0] == 400
    assert len(rx.logs()) == 1


def test_wait_for_reports_what_arrived(rx: OtlpReceiver) -> None:
    """A timed-out wait names what it waited for and summarises what did arrive."""
    with pytest.raises(AssertionError, match=r"waiting for the moon; received 0 export\(s\)"):
        rx.wait_for(lambda r: r.spans(), timeout=0.2, what="the moon")
    with pytest.raises(AssertionError, match="no span named 'nope'"):
        rx.find("nope")


def test_stop_closes_both_ports() -> None:
    """After the with block nothing listens any more and no receiver thread is left."""
    with OtlpReceiver() as receiver:
        ports = [int(receiver.http_endpoint.rsplit(":", 1)[1])]
        ports.append(int(receiver.grpc_endpoint.rsplit(":", 1)[1]))
        # leave an idle keep-alive connection open: stop() must not hang on it
        idle = socket.create_connection(("127.0.0.1", ports[0]))
        assert _receiver_threads()
    idle.close()
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    time.sleep(0.05)
    assert not _receiver_threads()
    with pytest.raises(RuntimeError, match="not running"):
        _ = receiver.http_endpoint
