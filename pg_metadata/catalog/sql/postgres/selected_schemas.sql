-- Non-system schemas of the current database that the include/exclude filters select.
-- Included by the per-database queries in place of their `--@include selected_schemas` line.
selected_schemas AS (
    SELECT n.oid, n.nspname, n.nspowner
    FROM pg_catalog.pg_namespace AS n
    WHERE n.nspname <> 'information_schema'
      AND n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)'
      AND (pg_catalog.cardinality(%(include_db)s::text[]) = 0
           OR EXISTS (SELECT 1 FROM unnest(%(include_db)s::text[], %(include_schema)s::text[]) AS f(db, sch)
                      WHERE pg_catalog.current_database() ~ f.db AND n.nspname ~ f.sch))
      AND NOT EXISTS (SELECT 1 FROM unnest(%(exclude_db)s::text[], %(exclude_schema)s::text[]) AS f(db, sch)
                      WHERE pg_catalog.current_database() ~ f.db AND n.nspname ~ f.sch)
)
