"""pg_metadata: a Dagster-native PostgreSQL metadata extractor producing Atlan catalog entities."""

__version__ = "0.1.0"
