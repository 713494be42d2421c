"""The Dagster layer: assets, checks, IO manager, resources, partitions, automation, component."""
