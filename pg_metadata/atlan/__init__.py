"""Atlan catalog entities built from raw catalog rows, and their integrity checks. No Dagster."""
