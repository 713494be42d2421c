"""`pg-metadata serve`: the REST API on uvicorn, over this deployment's instance and sources."""

from __future__ import annotations

import argparse
import os
import sys

from pg_metadata.errors import ConfigError


def serve(args: argparse.Namespace) -> int:
    """Validate the settings, then serve until interrupted."""
    from pg_metadata.api.settings import ApiSettings
    from pg_metadata.catalog.sources import configured_sources

    settings = ApiSettings.from_env(host=args.host, port=args.port)
    if not os.environ.get("DAGSTER_HOME"):
        raise ConfigError(
            "set DAGSTER_HOME to the Dagster instance of the deployment (the one `dg dev` or "
            "dagster-webserver uses), so runs the API starts show in the UI"
        )
    sources = configured_sources()
    import dagster as dg
    import uvicorn

    from pg_metadata import telemetry
    from pg_metadata.api.app import BodyLimit, create_app, instrument
    from pg_metadata.api.metrics import ApiMetrics
    from pg_metadata.api.workflows import GraphQLLauncher, WorkflowService

    instance = dg.DagsterInstance.get()
    metrics = ApiMetrics()
    service = WorkflowService(instance, sources, GraphQLLauncher(settings.dagster_url), metrics)
    app = create_app(settings, service, metrics)
    instrument(app)
    resumed = service.resume()
    names = ", ".join(s.name for s in sources)
    print(
        f"pg-metadata: serving sources {names} on http://{settings.host}:{settings.port} "
        f"(docs at /docs; runs through {settings.dagster_url}"
        f"{'; token required' if settings.token else '; no token: loopback only'}"
        f"{f'; resumed {resumed} workflow(s)' if resumed else ''})",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(
            BodyLimit(app, settings.max_body_bytes),
            host=settings.host,
            port=settings.port,
            log_level="info" if args.verbose else "warning",
        )
    finally:
        service.close()
        telemetry.shutdown()
    return 0
