-- Every database the role could extract, unfiltered: whether it may CONNECT to it, and whether
-- the filters select it (the same test as databases.sql, without the privilege).
SELECT
    d.datname::text                                           AS database_name,
    pg_catalog.has_database_privilege(d.oid, 'CONNECT')       AS can_connect,
    ((pg_catalog.cardinality(%(include_db)s::text[]) = 0
      OR EXISTS (SELECT 1 FROM unnest(%(include_db)s::text[]) AS f(db) WHERE d.datname ~ f.db))
     AND NOT EXISTS (SELECT 1 FROM unnest(%(exclude_db_all)s::text[]) AS f(db)
                     WHERE d.datname ~ f.db))                 AS selected_by_filters
FROM pg_catalog.pg_database AS d
WHERE d.datallowconn AND NOT d.datistemplate
ORDER BY d.datname
