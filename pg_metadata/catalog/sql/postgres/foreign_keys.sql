-- Every foreign key touching a selected relation, one row per column pair (composite keys
-- paired position by position). Only the constraints declared by the user (conparentid = 0):
-- the copies PostgreSQL keeps on each partition of a partitioned table are left out.
WITH
--@include selected_schemas
,
relations AS NOT MATERIALIZED (
    SELECT c.oid
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
),
pairs AS (
    SELECT con.conname, con.conrelid, con.confrelid, k.position, k.attnum,
           con.confkey[k.position] AS ref_attnum,
           src.oid IS NOT NULL AS selected, dst.oid IS NOT NULL AS ref_selected
    FROM pg_catalog.pg_constraint AS con
    LEFT JOIN relations AS src ON src.oid = con.conrelid
    LEFT JOIN relations AS dst ON dst.oid = con.confrelid
    CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, position)
    WHERE con.contype = 'f' AND con.conparentid = 0
      AND (src.oid IS NOT NULL OR dst.oid IS NOT NULL)
)
SELECT
    pg_catalog.current_database()                  AS database_name,
    p.conname                                      AS constraint_name,
    p.position::integer                            AS position,
    fn.nspname                                     AS schema_name,
    fc.relname                                     AS table_name,
    fa.attname                                     AS column_name,
    p.selected                                     AS selected,
    tn.nspname                                     AS ref_schema_name,
    tc.relname                                     AS ref_table_name,
    ta.attname                                     AS ref_column_name,
    p.ref_selected                                 AS ref_selected
FROM pairs AS p
JOIN pg_catalog.pg_class AS fc ON fc.oid = p.conrelid
JOIN pg_catalog.pg_namespace AS fn ON fn.oid = fc.relnamespace
JOIN pg_catalog.pg_attribute AS fa ON fa.attrelid = p.conrelid AND fa.attnum = p.attnum
JOIN pg_catalog.pg_class AS tc ON tc.oid = p.confrelid
JOIN pg_catalog.pg_namespace AS tn ON tn.oid = tc.relnamespace
JOIN pg_catalog.pg_attribute AS ta ON ta.attrelid = p.confrelid AND ta.attnum = p.ref_attnum
ORDER BY fn.nspname, fc.relname, p.conname, p.position
