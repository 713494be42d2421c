"""OpenTelemetry traces, metrics and logs, configured only by the standard OTEL_* variables.

With no OTLP endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT or a per-signal
OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT), or with OTEL_SDK_DISABLED=true, nothing is installed:
the OpenTelemetry API's no-op tracer and meter cost next to nothing. Otherwise the SDK's
providers export over OTLP, gRPC or http/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL, per signal too;
gRPC by default, as the Python SDK does), with OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
and the `pg_metadata` loggers are exported as OTLP logs carrying the active trace. `shutdown()`
flushes and stops everything; the CLI and run workers call it before they exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SIGNALS = ("traces", "metrics", "logs")
SCOPE = "pg_metadata"
_lock = threading.Lock()
_state: dict[str, Any] = {"configured": False, "providers": []}
LOGGER = logging.getLogger(SCOPE)


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether telemetry is to be exported: an endpoint is set and the SDK is not disabled."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    keys = ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    keys += [f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT" for s in SIGNALS]
    return any(env.get(k) for k in keys)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pg_metadata")
    except PackageNotFoundError:
        return "0"


def _protocol(signal: str) -> str:
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    return "http" if value.strip().lower().startswith("http") else "grpc"


def setup() -> bool:
    """Install the SDK providers once per process when telemetry is enabled; True if it is."""
    with _lock:
        if _state["configured"]:
            return bool(_state["providers"])
        _state["configured"] = True
        if not enabled():
            return False
        from opentelemetry.sdk.resources import Resource

        attributes = {"service.version": _version()}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attributes["service.name"] = SCOPE
        resource = Resource.create(attributes)
        makers = {"traces": _tracer_provider, "metrics": _meter_provider, "logs": _logger_provider}
        _state["providers"] = [
            make(resource)
            for signal, make in makers.items()
            if os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower() != "none"
        ]
        atexit.register(shutdown)
        return True


def _tracer_provider(resource: Any) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if _protocol("traces") == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _meter_provider(resource: Any) -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if _protocol("metrics") == "http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    metrics.set_meter_provider(provider)
    return provider


def _logger_provider(resource: Any) -> Any:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    if _protocol("logs") == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(provider)
    logger = logging.getLogger(SCOPE)
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    logger.setLevel(min(logger.level or logging.INFO, logging.INFO))
    return provider


def flush() -> None:
    """Export everything pending now (a run worker may be killed right after a run)."""
    for provider in _state["providers"]:
        with contextlib.suppress(Exception):
            provider.force_flush()


def shutdown() -> None:
    """Flush and stop the providers: nothing recorded is lost when the process exits."""
    with _lock:
        providers, _state["providers"] = _state["providers"], []
    for provider in providers:
        with contextlib.suppress(Exception):
            provider.force_flush()
            provider.shutdown()


def tracer() -> trace.Tracer:
    setup()
    return trace.get_tracer(SCOPE)


class _Instruments:
    """The metric instruments, created once per meter provider."""

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE)
        self.entities = meter.create_counter(
            "pg_metadata.entities_written", unit="{entity}", description="Entities written"
        )
        self.rows = meter.create_counter(
            "pg_metadata.catalog_rows", unit="{row}", description="Rows read per catalog query"
        )
        self.bytes = meter.create_counter(
            "pg_metadata.bytes_written", unit="By", description="Bytes of output files written"
        )
        self.duration = meter.create_histogram(
            "pg_metadata.phase.duration", unit="s", description="Duration of each phase"
        )
        self.failures = meter.create_counter(
            "pg_metadata.failures", unit="{failure}", description="Failures by kind"
        )


_instruments: list[_Instruments] = []


def instruments() -> _Instruments:
    """The metric instruments (no-ops when telemetry is off)."""
    setup()
    if not _instruments:
        _instruments.append(_Instruments())
    return _instruments[0]


# In-process listeners of what the run is doing (the CLI's live progress line); called from
# whatever thread does the work, so they must be quick and thread-safe.
_listeners: list[Callable[[str, dict[str, Any]], None]] = []


def add_listener(listener: Callable[[str, dict[str, Any]], None]) -> None:
    """Call `listener(event, fields)` on "phase" and "phase_end" (name, attributes), "rows"
    (a catalog query's rows) and "written" (a file's entity type and rows)."""
    _listeners.append(listener)


def remove_listener(listener: Callable[[str, dict[str, Any]], None]) -> None:
    """Stop calling `listener`."""
    if listener in _listeners:
        _listeners.remove(listener)


def notify(event: str, **fields: Any) -> None:
    """Tell the listeners (none outside the CLI)."""
    for listener in list(_listeners):
        listener(event, fields)


@contextlib.contextmanager
def phase(name: str, parent: Any = None, **attributes: Any) -> Iterator[trace.Span]:
    """A span for one phase, with its duration recorded as a metric; errors are recorded on
    the span (by the SDK) and counted by kind before they propagate. `parent`: a context to
    start under instead of the current one (a thread's or another process's)."""
    attrs = {k: v for k, v in attributes.items() if v is not None}
    started = time.perf_counter()
    if _listeners:
        notify("phase", name=name, attributes=attrs)
    with tracer().start_as_current_span(name, context=parent, attributes=attrs) as span:
        try:
            yield span
        except BaseException as exc:
            kind = getattr(exc, "kind", None) or type(exc).__name__
            instruments().failures.add(1, {"phase": name, "kind": kind})
            raise
        finally:
            instruments().duration.record(time.perf_counter() - started, {"phase": name})
            if _listeners:
                notify("phase_end", name=name, attributes=attrs)


_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent() -> str | None:
    """The W3C traceparent of the current span, to continue its trace in another process."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(value: str | None) -> otel_context.Context | None:
    """The context a W3C traceparent continues (None when there is none)."""
    if not value:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": value})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def current() -> otel_context.Context:
    """The current context, to hand to a thread."""
    return otel_context.get_current()


@contextlib.contextmanager
def attached(ctx: otel_context.Context | None) -> Iterator[None]:
    """Make `ctx` current for the block (a thread continuing its parent's trace)."""
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def log(level: int, message: str, **attributes: Any) -> None:
    """A record of the `pg_metadata` logger, exported as an OTLP log with the active trace."""
    if _state["providers"]:
        LOGGER.log(level, message, extra={k: v for k, v in attributes.items() if v is not None})


def has_current_span() -> bool:
    """Whether a recording span is current (a step in its run worker, under the run span)."""
    return trace.get_current_span().get_span_context().is_valid


def error_status(description: str) -> trace.Status:
    """An ERROR span status."""
    return trace.Status(trace.StatusCode.ERROR, description)


def record_output(source: str, path: str, type_name: str | None, rows: int, size: int) -> None:
    """Count one written file: its bytes, and its entities when it holds entities."""
    if _listeners:
        notify("written", path=path, type_name=type_name, rows=rows)
    meters = instruments()
    meters.bytes.add(size, {"pg_metadata.source": source, "pg_metadata.path": path})
    if type_name is not None:
        meters.entities.add(
            rows, {"pg_metadata.source": source, "pg_metadata.entity_type": type_name}
        )


def context_with(span: trace.Span | None) -> otel_context.Context | None:
    """A context whose current span is `span` (None for none)."""
    return trace.set_span_in_context(span) if span is not None else None
