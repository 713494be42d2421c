"""The `pg-metadata` command line."""
