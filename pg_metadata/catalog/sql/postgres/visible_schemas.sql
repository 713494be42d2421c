-- Non-system schemas of the current database, unfiltered, and whether the role may use them.
SELECT
    pg_catalog.current_database()::text                       AS database_name,
    n.nspname::text                                           AS schema_name,
    pg_catalog.has_schema_privilege(n.oid, 'USAGE')           AS can_use
FROM pg_catalog.pg_namespace AS n
WHERE n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)'
ORDER BY n.nspname
