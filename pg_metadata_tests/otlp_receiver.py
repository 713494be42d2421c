"""A real OTLP receiver for tests: OTLP/HTTP (protobuf) and OTLP/gRPC servers on loopback.

``OtlpReceiver`` listens on two free ports of 127.0.0.1, decodes every export with the
``opentelemetry-proto`` messages and keeps spans, metric data points and log records as plain
Python data (each tagged with the protocol that delivered it), so a test can point the
OpenTelemetry SDK at it (``env(protocol)``) and assert on what really crossed the wire::

    with OtlpReceiver() as rx:
        for key, value in rx.env("grpc").items():
            monkeypatch.setenv(key, value)
        ...  # run the code under test, shut its providers down
        rx.wait_for(lambda r: r.find_all("extract"), what="the extract span")
        print(rx.span_tree())
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

__all__ = ["OtlpReceiver", "any_value", "attributes"]

Protocol = Literal["grpc", "http"]
Signal = Literal["traces", "metrics", "logs"]
Item = dict[str, Any]
T = TypeVar("T")

HOST = "127.0.0.1"
POLL = 0.05  # seconds between checks in wait_for
PROTOBUF = "application/x-protobuf"
# Keep tests quick: batch processors flush after 200 ms, metric readers export every 500 ms.
FAST_EXPORT_ENV = {
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
    "OTEL_METRIC_EXPORT_INTERVAL": "500",
}
# OTLP/HTTP path -> (signal, request message, response message)
HTTP_ROUTES: dict[str, tuple[Signal, type[Message], type[Message]]] = {
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}
TREE_ATTRIBUTES = 4  # attributes shown per span in span_tree()
TREE_VALUE_WIDTH = 40


# --- AnyValue / KeyValue conversion --------------------------------------------------------


def any_value(value: common_pb2.AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to plain Python (arrays -> list, kvlists -> dict)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)  # string/bool/int/double/bytes


def attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """Convert repeated OTLP ``KeyValue`` to a dict."""
    return {kv.key: any_value(kv.value) for kv in pairs}


def _hex(raw: bytes) -> str:
    return raw.hex() if raw else ""


# --- flattening of the export requests -----------------------------------------------------


def _flatten_traces(request: Any, protocol: Protocol) -> list[Item]:
    out: list[Item] = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.append(
                    {
                        "name": span.name,
                        "trace_id": _hex(span.trace_id),
                        "span_id": _hex(span.span_id),
                        "parent_span_id": _hex(span.parent_span_id),
                        "kind": int(span.kind),
                        "attributes": attributes(span.attributes),
                        "status_code": int(span.status.code),
                        "status_message": span.status.message,
                        "events": [
                            {
                                "name": e.name,
                                "attributes": attributes(e.attributes),
                                "time_ns": e.time_unix_nano,
                            }
                            for e in span.events
                        ],
                        "links": [
                            {"trace_id": _hex(link.trace_id), "span_id": _hex(link.span_id)}
                            for link in span.links
                        ],
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "resource": resource,
                        "scope": ss.scope.name,
                        "protocol": protocol,
                    }
                )
    return out


def _number(point: Any) -> int | float | None:
    kind = point.WhichOneof("value")
    return None if kind is None else getattr(point, kind)


def _histogram_stats(p: Any) -> Item:
    """Count, sum, min and max of a (plain or exponential) histogram point."""
    return {
        "count": p.count,
        **{f: getattr(p, f) if p.HasField(f) else None for f in ("sum", "min", "max")},
    }


def _metric_points(metric: Any) -> Iterator[tuple[str, Any, Item]]:
    """(kind, data point, kind-specific fields) for each data point of one metric."""
    kind = metric.WhichOneof("data")
    if kind in ("sum", "gauge"):
        data = getattr(metric, kind)
        extra: Item = {}
        if kind == "sum":
            extra = {
                "monotonic": data.is_monotonic,
                "temporality": int(data.aggregation_temporality),
            }
        for p in data.data_points:
            yield kind, p, {"value": _number(p), **extra}
    elif kind in ("histogram", "exponential_histogram"):
        data = getattr(metric, kind)
        temporality = int(data.aggregation_temporality)
        for p in data.data_points:
            if kind == "histogram":
                shape = {
                    "bucket_counts": list(p.bucket_counts),
                    "explicit_bounds": list(p.explicit_bounds),
                }
            else:
                shape = {"scale": p.scale, "zero_count": p.zero_count}
            yield kind, p, {**_histogram_stats(p), **shape, "temporality": temporality}
    elif kind == "summary":
        for p in metric.summary.data_points:
            yield kind, p, {"count": p.count, "sum": p.sum}


def _flatten_metrics(request: Any, protocol: Protocol) -> list[Item]:
    out: list[Item] = []
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for kind, point, fields in _metric_points(metric):
                    out.append(
                        {
                            "name": metric.name,
                            "unit": metric.unit,
                            "description": metric.description,
                            "kind": kind,
                            "attributes": attributes(point.attributes),
                            **fields,
                            "resource": resource,
                            "scope": sm.scope.name,
                            "protocol": protocol,
                            "time_ns": point.time_unix_nano,
                        }
                    )
    return out


def _flatten_logs(request: Any, protocol: Protocol) -> list[Item]:
    out: list[Item] = []
    for rl in request.resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for record in sl.log_records:
                out.append(
                    {
                        "body": any_value(record.body),
                        "severity_text": record.severity_text,
                        "severity_number": int(record.severity_number),
                        "event_name": record.event_name,
                        "trace_id": _hex(record.trace_id),
                        "span_id": _hex(record.span_id),
                        "attributes": attributes(record.attributes),
                        "resource": resource,
                        "scope": sl.scope.name,
                        "protocol": protocol,
                        "time_ns": record.time_unix_nano or record.observed_time_unix_nano,
                        "observed_ns": record.observed_time_unix_nano,
                    }
                )
    return out


FLATTEN: dict[Signal, Callable[[Any, Protocol], list[Item]]] = {
    "traces": _flatten_traces,
    "metrics": _flatten_metrics,
    "logs": _flatten_logs,
}


# --- OTLP/HTTP server ----------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its receiver and its open (keep-alive) connections."""

    daemon_threads = True
    receiver: OtlpReceiver

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((HOST, 0), _OtlpHttpHandler)

    def close_open_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they can end."""
        with self.connections_lock:
            conns = list(self.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    """OTLP/HTTP binary protobuf: POST /v1/{traces,metrics,logs}, gzip/deflate bodies."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the exporters' connection pools expect
    timeout = 30  # seconds an idle connection may stay open
    server: _HttpServer
    error_content_type = "text/plain"
    error_message_format = "%(code)d %(message)s: %(explain)s\n"
    _decoders: ClassVar[dict[str, Callable[[bytes], bytes]]] = {
        "gzip": gzip.decompress,
        "deflate": zlib.decompress,
        "identity": lambda b: b,
        "": lambda b: b,
    }

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = PROTOBUF) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, status: HTTPStatus, message: str) -> None:
        # OTLP/HTTP: an error response carries a google.rpc.Status
        self._reply(status, status_pb2.Status(code=3, message=message).SerializeToString())

    def do_POST(self) -> None:
        """Decode one OTLP export request and answer with the empty Export*ServiceResponse."""
        route = HTTP_ROUTES.get(self.path.split("?", 1)[0])
        body = self._read_body()  # read it in any case so the connection stays usable
        if route is None:
            self._fail(HTTPStatus.NOT_FOUND, f"no OTLP signal at {self.path}")
            return
        signal, request_type, response_type = route
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != PROTOBUF:
            self._fail(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"expected {PROTOBUF}")
            return
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        decoder = self._decoders.get(encoding)
        if decoder is None:
            self._fail(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported encoding {encoding!r}")
            return
        try:
            request = request_type.FromString(decoder(body))
        except (OSError, EOFError, zlib.error, DecodeError) as exc:
            self._fail(HTTPStatus.BAD_REQUEST, f"undecodable {signal} request: {exc}")
            return
        self.server.receiver._record(
            signal, request, "http", encoding or "none", dict(self.headers.items())
        )
        self._reply(HTTPStatus.OK, response_type().SerializeToString())

    def do_GET(self) -> None:
        """OTLP/HTTP is POST only."""
        self._fail(HTTPStatus.METHOD_NOT_ALLOWED, "OTLP/HTTP accepts POST only")


# --- OTLP/gRPC services --------------------------------------------------------------------


def _grpc_headers(context: grpc.ServicerContext) -> dict[str, str]:
    return {k: v if isinstance(v, str) else v.hex() for k, v in context.invocation_metadata() or ()}


def _servicer(base: type, signal: Signal, response: type[Message]) -> type:
    """A gRPC servicer of one signal's Export that records into the receiver."""

    class Servicer(base):  # type: ignore[misc, valid-type]
        def __init__(self, receiver: OtlpReceiver) -> None:
            self.receiver = receiver

        def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
            self.receiver._record(signal, request, "grpc", "", _grpc_headers(context))
            return response()

    return Servicer


_TraceService = _servicer(
    trace_service_pb2_grpc.TraceServiceServicer,
    "traces",
    trace_service_pb2.ExportTraceServiceResponse,
)
_MetricsService = _servicer(
    metrics_service_pb2_grpc.MetricsServiceServicer,
    "metrics",
    metrics_service_pb2.ExportMetricsServiceResponse,
)
_LogsService = _servicer(
    logs_service_pb2_grpc.LogsServiceServicer, "logs", logs_service_pb2.ExportLogsServiceResponse
)


# --- the receiver --------------------------------------------------------------------------


class OtlpReceiver:
    """OTLP/HTTP and OTLP/gRPC servers on 127.0.0.1 that record every export as plain data."""

    def __init__(self, grpc_workers: int = 4) -> None:
        """Prepare (not start) the receiver; ``grpc_workers`` sizes the gRPC thread pool."""
        self._grpc_workers = grpc_workers
        self._lock = threading.Lock()
        self._spans: list[Item] = []
        self._metrics: list[Item] = []
        self._logs: list[Item] = []
        self._exports: list[Item] = []
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None
        self._grpc_pool: ThreadPoolExecutor | None = None
        self._http_port = 0
        self._grpc_port = 0

    # lifecycle

    def start(self) -> OtlpReceiver:
        """Start both servers on free loopback ports; returns self."""
        if self._http is not None:
            raise RuntimeError("OtlpReceiver already started")
        try:
            self._http = _HttpServer(self)
            self._http_port = self._http.server_address[1]
            self._http_thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="otlp-receiver-http",
                daemon=True,
            )
            self._http_thread.start()
            self._grpc_pool = ThreadPoolExecutor(
                max_workers=self._grpc_workers, thread_name_prefix="otlp-receiver-grpc"
            )
            self._grpc = grpc.server(self._grpc_pool)
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
                _TraceService(self), self._grpc
            )
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
                _MetricsService(self), self._grpc
            )
            logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), self._grpc)
            self._grpc_port = self._grpc.add_insecure_port(f"{HOST}:0")
            if not self._grpc_port:
                raise RuntimeError("gRPC server could not bind a loopback port")
            self._grpc.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut both servers down and wait for their threads; safe to call twice."""
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(5)
            self._grpc = None
        if self._grpc_pool is not None:
            self._grpc_pool.shutdown(wait=True, cancel_futures=True)
            self._grpc_pool = None
        if self._http is not None:
            if self._http_thread is not None and self._http_thread.is_alive():
                self._http.shutdown()
            self._http.close_open_connections()
            self._http.server_close()  # joins the per-connection handler threads
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(5)
            self._http_thread = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # where to send telemetry

    @property
    def http_endpoint(self) -> str:
        """Base URL of the OTLP/HTTP server (exporters append /v1/<signal>)."""
        self._require_started()
        return f"http://{HOST}:{self._http_port}"

    @property
    def grpc_endpoint(self) -> str:
        """URL of the OTLP/gRPC server (plaintext)."""
        self._require_started()
        return f"http://{HOST}:{self._grpc_port}"

    def env(self, protocol: str) -> dict[str, str]:
        """OTEL_* variables that point an SDK at this receiver: "grpc" or "http/protobuf"."""
        if protocol == "grpc":
            target = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            }
        elif protocol == "http/protobuf":
            target = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.http_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
        else:
            raise ValueError(f"protocol must be 'grpc' or 'http/protobuf', not {protocol!r}")
        return {**target, **FAST_EXPORT_ENV}

    def _require_started(self) -> None:
        if self._http is None or self._grpc is None:
            raise RuntimeError("OtlpReceiver is not running; use start() or a with block")

    # recording

    def _record(
        self,
        signal: Signal,
        request: Any,
        protocol: Protocol,
        compression: str,
        headers: dict[str, str],
    ) -> None:
        items = FLATTEN[signal](request, protocol)
        with self._lock:
            {"traces": self._spans, "metrics": self._metrics, "logs": self._logs}[signal].extend(
                items
            )
            self._exports.append(
                {
                    "signal": signal,
                    "protocol": protocol,
                    "compression": compression,
                    "items": len(items),
                    "headers": headers,
                }
            )

    def _copy(self, items: list[Item]) -> list[Item]:
        with self._lock:
            return copy.deepcopy(items)

    def spans(self) -> list[Item]:
        """All spans received so far, in arrival order."""
        return self._copy(self._spans)

    def metrics(self) -> list[Item]:
        """All metric data points received so far, in arrival order."""
        return self._copy(self._metrics)

    def logs(self) -> list[Item]:
        """All log records received so far, in arrival order."""
        return self._copy(self._logs)

    def exports(self) -> list[Item]:
        """One entry per export request: signal, protocol, compression, items, headers."""
        return self._copy(self._exports)

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._lock:
            self._spans.clear()
            self._metrics.clear()
            self._logs.clear()
            self._exports.clear()

    # waiting and querying

    def wait_for(
        self, predicate: Callable[[OtlpReceiver], T], timeout: float = 20.0, what: str = "data"
    ) -> T:
        """Poll until ``predicate(self)`` is truthy and return it; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}; received {self.summary()}"
                )
            time.sleep(POLL)

    def summary(self) -> str:
        """Short account of what has arrived: counts, span and metric names."""
        with self._lock:
            span_names = [s["name"] for s in self._spans]
            metric_names = sorted({m["name"] for m in self._metrics})
            n_points, n_logs, n_exports = len(self._metrics), len(self._logs), len(self._exports)
        return (
            f"{n_exports} export(s): {len(span_names)} span(s) {span_names}, "
            f"{n_points} metric point(s) {metric_names}, {n_logs} log record(s)"
        )

    def find_all(self, name: str) -> list[Item]:
        """All received spans called ``name``, by start time."""
        return sorted((s for s in self.spans() if s["name"] == name), key=_start)

    def find(self, name: str) -> Item:
        """The first-started span called ``name``; AssertionError (with the tree) if none."""
        found = self.find_all(name)
        if not found:
            raise AssertionError(f"no span named {name!r}; spans:\n{self.span_tree()}")
        return found[0]

    def children(self, span: Item) -> list[Item]:
        """Direct children of ``span`` (same trace, parent_span_id match), by start time."""
        return sorted(
            (
                s
                for s in self.spans()
                if s["trace_id"] == span["trace_id"] and s["parent_span_id"] == span["span_id"]
            ),
            key=_start,
        )

    def span_tree(self) -> str:
        """The received spans as an indented tree by parent, with a few key attributes."""
        spans = sorted(self.spans(), key=_start)
        if not spans:
            return "(no spans)"
        ids = {(s["trace_id"], s["span_id"]) for s in spans}
        kids: dict[tuple[str, str], list[Item]] = {}
        roots: list[Item] = []
        for s in spans:
            parent = (s["trace_id"], s["parent_span_id"])
            if s["parent_span_id"] and parent in ids:
                kids.setdefault(parent, []).append(s)
            else:
                roots.append(s)
        lines: list[str] = []

        def walk(span: Item, depth: int) -> None:
            lines.append("  " * depth + _describe(span))
            for child in kids.get((span["trace_id"], span["span_id"]), []):
                walk(child, depth + 1)

        for root in roots:
            walk(root, 0)
        return "\n".join(lines)


def _start(span: Item) -> int:
    return span["start_ns"]


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= TREE_VALUE_WIDTH else text[: TREE_VALUE_WIDTH - 3] + "..."


def _describe(span: Item) -> str:
    ms = (span["end_ns"] - span["start_ns"]) / 1e6
    text = f"{span['name']} ({ms:.1f} ms)"
    if span["status_code"] == 2:
        text += f" ERROR {span['status_message']!r}"
    attrs = list(span["attributes"].items())
    if attrs:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in attrs[:TREE_ATTRIBUTES])
        more = f", +{len(attrs) - TREE_ATTRIBUTES}" if len(attrs) > TREE_ATTRIBUTES else ""
        text += f" [{shown}{more}]"
    return text
