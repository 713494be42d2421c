"""An example fleet: two PostgreSQL servers declared as PostgresCatalogComponents."""
