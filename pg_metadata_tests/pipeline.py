"""Run the real pipeline in-process for tests, and read back what it wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from pg_metadata.catalog.sources import Source
from pg_metadata.orchestration.definitions import build_definitions
from pg_metadata.orchestration.plan import SourcePlan
from pg_metadata.orchestration.translator import PostgresCatalogTranslator
from pg_metadata.output.storage import ObjectStore, encode_segment, open_store

CONNECTION_QN = "default/postgres/1717000000"


def plan_of(source: Source) -> SourcePlan:
    """The plan (keys, job and partition names) of a source with the default translator."""
    return SourcePlan(source, PostgresCatalogTranslator().get_asset_spec)


@dataclass
class PipelineRun:
    """Results of one discovery run plus one run per database, and access to the output."""

    instance: dg.DagsterInstance
    source: Source
    target: str
    discover: dg.ExecuteInProcessResult
    runs: dict[str, dg.ExecuteInProcessResult] = field(default_factory=dict)

    @property
    def store(self) -> ObjectStore:
        """The source's part of the output target."""
        return open_store(self.target, self.source.name)

    @property
    def plan(self) -> SourcePlan:
        return plan_of(self.source)

    def manifest(self, database: str) -> dict[str, Any]:
        """The latest manifest of a database."""
        data = self.store.read_bytes(f"latest/{encode_segment(database)}.json")
        assert data is not None, f"no latest manifest for {database!r}"
        return json.loads(data)

    def file(self, database: str, path: str) -> dict[str, Any]:
        """The manifest entry of one asset, by path (e.g. raw/tables, transformed/column)."""
        return next(f for f in self.manifest(database)["files"] if f["path"] == path)

    def entities(self, database: str, path: str) -> list[dict[str, Any]]:
        """Entities of a `transformed/...` file, parsed strictly (NaN/Infinity rejected)."""
        local = self.store.fetch(self.file(database, path)["uri"])
        out = []
        for line in local.read_text("utf-8").splitlines():
            out.append(json.loads(line, parse_constant=_reject_constant))
        return out

    def all_entities(self, database: str) -> list[dict[str, Any]]:
        """Entities of every type."""
        paths = [f["path"] for f in self.manifest(database)["files"]]
        return [
            e for p in paths if p.startswith("transformed/") for e in self.entities(database, p)
        ]

    def qualified_names(self, database: str) -> set[str]:
        """The qualifiedNames of every entity of a database."""
        return {e["attributes"]["qualifiedName"] for e in self.all_entities(database)}

    def raw(self, database: str | None, path: str):
        """A raw Parquet file as an Arrow table."""
        if database is None:
            ev = self.instance.get_latest_materialization_event(self.plan.key(path))
            uri = str(ev.asset_materialization.metadata["uri"].value)
        else:
            uri = self.file(database, path)["uri"]
        return pq.read_table(self.store.fetch(uri))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def make_source(
    cluster,
    *,
    name: str = "default",
    user: str | None = None,
    password: str | None = None,
    include: str = "",
    exclude: str = "",
    temp_table_regex: str = "",
    connection_name: str = "prod-pg",
    connection_qualified_name: str = CONNECTION_QN,
    retries: int = 0,
    postgres_kw: dict[str, Any] | None = None,
) -> Source:
    """A source pointing at the test server (postgres_kw overrides any Source field)."""
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
        "include": include,
        "exclude": exclude,
        "temp_table_regex": temp_table_regex,
        "connection_qualified_name": connection_qualified_name,
        "connection_name": connection_name,
    }
    fields.update(postgres_kw or {})
    return Source(name=name, **fields)


def run_source(
    source: Source,
    instance: dg.DagsterInstance,
    *,
    target: str,
    raise_on_error: bool = True,
    defs: dg.Definitions | None = None,
) -> PipelineRun:
    """Discovery, then every registered database of one source, like `pg-metadata extract`."""
    defs = defs or build_definitions([source], target=target)
    plan = plan_of(source)
    discover = defs.resolve_job_def(plan.discover_job_name).execute_in_process(
        instance=instance, raise_on_error=raise_on_error
    )
    run = PipelineRun(instance, source, target, discover)
    if not discover.success:
        return run
    job = defs.resolve_job_def(plan.extract_job_name)
    for name in instance.get_dynamic_partitions(plan.partitions.name):
        run.runs[name] = job.execute_in_process(
            instance=instance, partition_key=name, raise_on_error=raise_on_error
        )
    return run


def run_pipeline(
    cluster, instance: dg.DagsterInstance, *, target: str, raise_on_error: bool = True, **kw: Any
) -> PipelineRun:
    """A source on the test server (make_source's keywords), run end to end."""
    return run_source(
        make_source(cluster, **kw), instance, target=target, raise_on_error=raise_on_error
    )
