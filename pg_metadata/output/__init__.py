"""Where and how output is written: object stores, Parquet and JSON Lines files. No Dagster."""
