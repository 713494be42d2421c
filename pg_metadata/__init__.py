"""pg_metadata: a Dagster-native PostgreSQL metadata extractor producing Atlan catalog entities.

`pg_metadata.PostgresCatalogComponent` is the Dagster Component (registered for `dg` through
the `dagster_dg_cli.registry_modules` entry point). It is imported on first use, so the
Dagster-free parts and the CLI's `--help` do not pay for importing Dagster.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["PostgresCatalogComponent"]


def __getattr__(name: str) -> Any:
    if name == "PostgresCatalogComponent":
        from pg_metadata.orchestration.component import PostgresCatalogComponent

        return PostgresCatalogComponent
    raise AttributeError(f"module 'pg_metadata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
