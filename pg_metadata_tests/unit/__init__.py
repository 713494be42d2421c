"""Fast, offline unit tests for the pure (Dagster-free) modules: no database, no network."""
