"""Prometheus metrics of the REST API (GET /metrics), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ApiMetrics:
    """Requests, runs started and finished, entities written, extraction durations."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pg_metadata_api_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "pg_metadata_api_request_duration_seconds",
            "HTTP request durations by route",
            ["route"],
            registry=r,
        )
        self.runs_started = Counter(
            "pg_metadata_runs_started",
            "Dagster runs started through the API, by source and job",
            ["source", "job"],
            registry=r,
        )
        self.runs_finished = Counter(
            "pg_metadata_runs_finished",
            "Dagster runs started through the API that ended, by source and status "
            "(success, failure, canceled)",
            ["source", "status"],
            registry=r,
        )
        self.entities = Counter(
            "pg_metadata_entities_written",
            "Entities written by runs started through the API, by source and type",
            ["source", "type"],
            registry=r,
        )
        self.extraction_seconds = Histogram(
            "pg_metadata_extraction_duration_seconds",
            "Wall time of each database's extraction run, start to end",
            ["source"],
            buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
