"""Dagster resources: the output target of one source."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from pg_metadata.output.storage import DEFAULT_TARGET, ObjectStore, open_store


class OutputTarget(dg.ConfigurableResource):
    """Where a source's files go: `<target>/<source>/`, target a folder or s3://bucket/prefix."""

    target: str = Field(default=DEFAULT_TARGET, description="Folder or s3://bucket/prefix")
    source: str = Field(default="", description="The source; its files go under <target>/<source>/")
    s3: S3Resource = Field(default_factory=S3Resource)

    _store: Any = PrivateAttr(default=None)

    def store(self) -> ObjectStore:
        """The object store for this source (one S3 client per resource, not per call)."""
        if self._store is None:
            self._store = open_store(self.target, self.source, self.s3.get_client)
        return self._store
