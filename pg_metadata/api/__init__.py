"""The REST API (`pg-metadata serve`): Atlan's app's front door over the Dagster deployment."""
