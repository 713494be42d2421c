"""Reading a server's catalog: settings, auth, filters, connections, queries. No Dagster."""
