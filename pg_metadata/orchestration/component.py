"""`pg_metadata.PostgresCatalogComponent`: one PostgreSQL server (a source) as Dagster assets.

One instance per source, in a `defs.yaml`:

    type: pg_metadata.PostgresCatalogComponent
    attributes:
      source:
        name: prod
        host: db1.example.com
        user: catalog_reader
        password_env: PROD_PG_PASSWORD
        connection_qualified_name: default/postgres/1717000000
        max_connections: 2
      output: s3://my-bucket/catalog          # optional; default PG_METADATA_OUTPUT
      translation:                            # optional, per asset (template var `data`)
        group_name: "catalog_{{ data.source.name }}"

`source` takes the same keys as an entry of a sources file (`pg_metadata.catalog.sources`).
"""

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster.components.utils.translation import ResolvedTranslationFn
from pydantic import BaseModel

from pg_metadata.catalog.sources import Source, source_from_mapping
from pg_metadata.orchestration.definitions import default_target, source_definitions
from pg_metadata.orchestration.plan import CatalogAssetData
from pg_metadata.orchestration.translator import PostgresCatalogTranslator


@dataclass
class SourceAttributes(dg.Resolvable):
    """A source's keys, as in a sources file (plus `password` for `{{ env.X }}` templates).

    Numbers may be given as strings, so `port: "{{ env.PGPORT }}"` works.
    """

    name: str
    host: str | None = None
    port: int | str | None = None
    user: str | None = None
    database: str | None = None
    password_env: str | None = None
    password: str | None = None
    auth: str | None = None
    aws_region: str | None = None
    aws_profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    include: str | dict[str, Any] | None = None
    exclude: str | dict[str, Any] | None = None
    temp_table_regex: str | None = None
    connection_qualified_name: str | None = None
    connection_name: str | None = None
    tenant_id: str | None = None
    max_connections: int | str | None = None
    query_connections: int | str | None = None
    retries: int | str | None = None
    connect_timeout_s: int | str | None = None
    statement_timeout_ms: int | str | None = None
    lock_timeout_ms: int | str | None = None
    schedule: str | None = None
    schedule_timezone: str | None = None
    discovery_interval_s: int | str | None = None
    change_interval_s: int | str | None = None


class ScaffoldParams(BaseModel):
    """`dg scaffold defs pg_metadata.PostgresCatalogComponent <name> --json-params '{...}'`."""

    host: str = "localhost"
    port: int = 5432
    user: str = "catalog_reader"
    database: str = "postgres"
    connection_qualified_name: str = "default/postgres/0"


DEFS_TEMPLATE = """\
# One PostgreSQL server (a source) as Dagster assets: <name>/raw/..., <name>/atlan/...,
# <name>/output/manifest, with its own partitions (one per database), pool, sensors and schedule.
type: {type_name}
attributes:
  source:
    name: {name}
    host: {host}
    port: {port}
    user: {user}
    database: {database}                 # the first database to connect to
    password_env: {env_prefix}_PG_PASSWORD   # the variable's name; read when connecting
    auth: basic                          # or iam_user / iam_role (aws_region, role_arn, ...)
    include: {{}}                          # e.g. {{"^shop$": "*"}} (Atlan's filter format)
    exclude: {{}}
    connection_qualified_name: {connection_qualified_name}   # your Atlan connection
    connection_name: {name}
    max_connections: 2                   # never more than this many sessions on this server
  # output: s3://my-bucket/catalog       # default: PG_METADATA_OUTPUT or ./pg_metadata_output
"""


class PostgresCatalogScaffolder(dg.Scaffolder[ScaffoldParams]):
    """Writes a commented, working defs.yaml for one source named after its folder."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ScaffoldParams]) -> None:
        params = request.params or ScaffoldParams()
        name = re.sub(r"[^A-Za-z0-9_]", "_", request.target_path.name) or "source"
        if not name[0].isalpha():
            name = f"pg_{name}"
        request.target_path.mkdir(parents=True, exist_ok=True)
        text = DEFS_TEMPLATE.format(
            type_name=request.type_name, name=name, env_prefix=name.upper(), **params.model_dump()
        )
        (Path(request.target_path) / "defs.yaml").write_text(text, "utf-8")


@dg.scaffold_with(PostgresCatalogScaffolder)
@dataclass
class PostgresCatalogComponent(dg.Component, dg.Resolvable):
    """One PostgreSQL server as Dagster assets: raw catalog, Atlan entities, manifest."""

    source: SourceAttributes
    output: str | None = None
    translation: ResolvedTranslationFn[CatalogAssetData] = None

    @cached_property
    def translator(self) -> PostgresCatalogTranslator:
        """The base translator (override `get_asset_spec` to change every spec)."""
        return PostgresCatalogTranslator()

    def source_config(self, where: str = "defs.yaml") -> Source:
        """The validated source; errors name the defs.yaml and the key."""
        data = {k: v for k, v in dataclasses.asdict(self.source).items() if v is not None}
        return source_from_mapping(
            data, f"{where}, source {self.source.name!r}", allow_password=True
        )

    def get_asset_spec(self, data: CatalogAssetData) -> dg.AssetSpec:
        """The spec of one asset: the translator's, then `translation` if set."""
        spec = self.translator.get_asset_spec(data)
        return self.translation(spec, data) if self.translation else spec

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        where = str(Path(context.path) / "defs.yaml")
        return source_definitions(
            self.source_config(where),
            target=self.output or default_target(),
            get_spec=self.get_asset_spec,
        )
