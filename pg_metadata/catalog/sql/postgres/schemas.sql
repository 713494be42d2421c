-- Schemas of the current database selected by the filters, with their table and view counts.
-- table_count counts what Atlan's app counts: ordinary, partitioned and foreign tables,
-- partitions included; views_count counts views and materialized views.
WITH
--@include selected_schemas
,
relation_counts AS (
    SELECT c.relnamespace,
           count(*) FILTER (WHERE c.relkind IN ('r', 'p', 'f'))                          AS table_count,
           count(*) FILTER (WHERE c.relkind IN ('r', 'p', 'f') AND c.relispartition)     AS partition_count,
           count(*) FILTER (WHERE c.relkind IN ('v', 'm'))                               AS views_count
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
    GROUP BY c.relnamespace
)
SELECT
    pg_catalog.current_database()                AS database_name,
    s.oid::bigint                                AS schema_oid,
    s.nspname                                    AS schema_name,
    pg_catalog.pg_get_userbyid(s.nspowner)       AS owner,
    d.description                                AS comment,
    COALESCE(rc.table_count, 0)::bigint          AS table_count,
    COALESCE(rc.views_count, 0)::bigint          AS views_count,
    COALESCE(rc.partition_count, 0)::bigint      AS partition_count
FROM selected_schemas AS s
LEFT JOIN relation_counts AS rc ON rc.relnamespace = s.oid
LEFT JOIN pg_catalog.pg_description AS d
    ON d.objoid = s.oid AND d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
   AND d.objsubid = 0
ORDER BY s.nspname
