from setuptools import find_packages, setup

setup(
    name="pg_metadata",
    version="0.1.0",
    description="Dagster-native PostgreSQL metadata extractor producing Atlan catalog entities",
    packages=find_packages(exclude=["pg_metadata_tests", "pg_metadata_tests.*"]),
    package_data={"pg_metadata": ["catalog/sql/*/*.sql", "demo/*.sql", "demo/*.yaml"]},
    python_requires=">=3.11",
    install_requires=[
        # dagster-aws pins dagster exactly; bump the four together.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-graphql==1.13.27",
        "dagster-aws==0.29.27",
        # PostgreSQL storage for Dagster's own runs/events/schedules (deploy/dagster.prod.yaml)
        "dagster-postgres==0.29.27",
        # `dg` (check defs, list defs, scaffold defs, dev) for the Component
        "dagster-dg-cli==1.13.27",
        # sources files
        "pyyaml>=6",
        "sqlalchemy>=2.1,<2.2",
        "psycopg2-binary>=2.9.10,<3",
        "pyarrow>=20",
        "pandas>=2.2",
        # the duplicate-name check sorts an entity file's 8-byte name hashes in place
        "numpy>=1.26",
        "boto3>=1.40",
        # orjson: 5-10x faster JSON encoding than the stdlib for million-entity outputs.
        "orjson>=3.10",
        # column-level view lineage: parses pg_get_viewdef (its AST keys change between
        # majors, e.g. `from_` in 30). [c] is its mypyc-compiled build (sqlglotc, same version):
        # 3.3x faster parsing, lineage of 4,000 views 2.25 -> 1.03 s. 30.30 is the newest
        # version with a compiled build on PyPI.
        "sqlglot[c]==30.30.0",
        # OpenTelemetry: traces, metrics and logs over OTLP (gRPC or http/protobuf), off unless
        # an OTEL_EXPORTER_OTLP_*ENDPOINT is set; grpcio and protobuf are already Dagster's
        "opentelemetry-api>=1.45,<2",
        "opentelemetry-sdk>=1.45,<2",
        "opentelemetry-exporter-otlp-proto-grpc>=1.45,<2",
        "opentelemetry-exporter-otlp-proto-http>=1.45,<2",
        # the REST API (`pg-metadata serve`): FastAPI on uvicorn (both already come with
        # dagster-webserver's stack: starlette, uvicorn), request spans, /metrics
        "fastapi>=0.115",
        "uvicorn>=0.30",
        "opentelemetry-instrumentation-fastapi>=0.66b0",
        "prometheus-client>=0.21",
    ],
    extras_require={
        # PG_METADATA_EXECUTOR=celery: steps on dagster-celery workers
        "celery": ["dagster-celery==0.29.27", "redis>=5"],
        "dev": [
            "pytest>=8",
            "moto[server]>=5.1",
            "ruff>=0.6",
            # self-signed CA and server certificates for the TLS tests
            "cryptography>=42",
            # sampling profiler for bench/run_benchmark.py --profile
            "py-spy>=0.4",
            # layer contracts (pyproject.toml [tool.importlinter]), run in .ci/run
            "import-linter>=2.1",
            # referee: every entity parses as pyatlan's own asset classes
            "pyatlan==11.6.0",
            # the fleet test runs steps on Celery workers with a loopback Redis broker
            "dagster-celery==0.29.27",
            "redis>=5",
            # the test OTLP receiver decodes what the exporters send (also an exporter dep)
            "opentelemetry-proto>=1.45,<2",
        ],
    },
    entry_points={
        "console_scripts": ["pg-metadata=pg_metadata.cli.main:main"],
        # `dg list components` shows pg_metadata.PostgresCatalogComponent
        "dagster_dg_cli.registry_modules": ["pg_metadata = pg_metadata"],
    },
)
