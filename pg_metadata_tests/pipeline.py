"""Run the real pipeline in-process for tests, and read back what it wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from pg_metadata.definitions import build_definitions
from pg_metadata.orchestration.partitions import DATABASE_PARTITIONS_NAME
from pg_metadata.orchestration.resources import CatalogSettings, OutputTarget, PostgresResource
from pg_metadata.output.storage import encode_segment

CONNECTION_QN = "default/postgres/1717000000"


@dataclass
class PipelineRun:
    """Results of one discovery run plus one run per database, and access to the output."""

    instance: dg.DagsterInstance
    output: OutputTarget
    discover: dg.ExecuteInProcessResult
    runs: dict[str, dg.ExecuteInProcessResult] = field(default_factory=dict)

    @property
    def store(self):
        return self.output.store()

    def manifest(self, database: str) -> dict[str, Any]:
        """The latest manifest of a database."""
        data = self.store.read_bytes(f"latest/{encode_segment(database)}.json")
        assert data is not None, f"no latest manifest for {database!r}"
        return json.loads(data)

    def file(self, database: str, asset: str) -> dict[str, Any]:
        """The manifest entry of one asset."""
        return next(f for f in self.manifest(database)["files"] if f["asset"] == asset)

    def entities(self, database: str, asset: str) -> list[dict[str, Any]]:
        """Entities of an `atlan/...` asset, parsed strictly (NaN/Infinity rejected)."""
        path = self.store.fetch(self.file(database, asset)["uri"])
        out = []
        for line in path.read_text("utf-8").splitlines():
            out.append(json.loads(line, parse_constant=_reject_constant))
        return out

    def all_entities(self, database: str) -> list[dict[str, Any]]:
        """Entities of every type."""
        assets = [f["asset"] for f in self.manifest(database)["files"]]
        return [e for a in assets if a.startswith("atlan/") for e in self.entities(database, a)]

    def qualified_names(self, database: str) -> set[str]:
        """The qualifiedNames of every entity of a database."""
        return {e["attributes"]["qualifiedName"] for e in self.all_entities(database)}

    def raw(self, database: str | None, asset: str):
        """A raw Parquet file as an Arrow table."""
        if database is None:
            ev = self.instance.get_latest_materialization_event(dg.AssetKey(asset.split("/")))
            uri = str(ev.asset_materialization.metadata["uri"].value)
        else:
            uri = self.file(database, asset)["uri"]
        return pq.read_table(self.store.fetch(uri))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def make_resources(
    cluster,
    *,
    target: str,
    user: str | None = None,
    password: str | None = None,
    include: str = "",
    exclude: str = "",
    temp_table_regex: str = "",
    connection_name: str = "prod-pg",
    retries: int = 0,
    postgres_kw: dict[str, Any] | None = None,
) -> tuple[PostgresResource, CatalogSettings, OutputTarget]:
    """Resources pointing at the test server (postgres_kw overrides the PostgresResource)."""
    user = user or cluster.admin_user
    if password is None and user == cluster.admin_user:
        password = cluster.admin_password
    fields: dict[str, Any] = {
        "host": cluster.host,
        "port": cluster.port,
        "user": user,
        "password": password,
        "database": "postgres",
        "sslmode": "disable",
        "retries": retries,
    }
    fields.update(postgres_kw or {})
    postgres = PostgresResource(**fields)
    catalog = CatalogSettings(
        include_filter=include,
        exclude_filter=exclude,
        temp_table_regex=temp_table_regex,
        connection_qualified_name=CONNECTION_QN,
        connection_name=connection_name,
    )
    return postgres, catalog, OutputTarget(target=target)


def run_pipeline(
    cluster, instance: dg.DagsterInstance, *, target: str, raise_on_error: bool = True, **kw: Any
) -> PipelineRun:
    """Discovery, then every registered database, like `pg-metadata extract`."""
    postgres, catalog, output = make_resources(cluster, target=target, **kw)
    defs = build_definitions(postgres=postgres, catalog=catalog, output=output)
    discover = defs.resolve_job_def("discover_databases").execute_in_process(
        instance=instance, raise_on_error=raise_on_error
    )
    run = PipelineRun(instance, output, discover)
    if not discover.success:
        return run
    job = defs.resolve_job_def("extract_database")
    for name in instance.get_dynamic_partitions(DATABASE_PARTITIONS_NAME):
        run.runs[name] = job.execute_in_process(
            instance=instance, partition_key=name, raise_on_error=raise_on_error
        )
    return run
