-- A cheap fingerprint of the selected part of one database's catalog: one row, one statement.
-- It changes when a schema, relation, column, type, default, constraint, comment, view
-- definition, partition bound or owner changes; not when rows or statistics change.
-- Each category is (count, sum of 64-bit row hashes): order-independent, constant memory.
WITH
--@include selected_schemas
,
relations AS (
    SELECT c.oid, c.relname, c.relkind, c.relnamespace, c.relispartition, c.relowner,
           c.relpartbound
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
),
parts (category, row_text) AS (
    SELECT 'schema', concat_ws('|', s.oid, s.nspname, s.nspowner)
    FROM selected_schemas AS s
    UNION ALL
    SELECT 'relation', concat_ws('|', r.oid, r.relname, r.relkind, r.relnamespace,
                                 r.relispartition, r.relowner, r.relpartbound::text)
    FROM relations AS r
    UNION ALL
    SELECT 'column', concat_ws('|', a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod,
                               a.attnotnull, a.attidentity, a.attgenerated, a.attcollation)
    FROM pg_catalog.pg_attribute AS a
    JOIN relations AS r ON r.oid = a.attrelid
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'default', concat_ws('|', ad.adrelid, ad.adnum, ad.adbin::text)
    FROM pg_catalog.pg_attrdef AS ad
    JOIN relations AS r ON r.oid = ad.adrelid
    UNION ALL
    SELECT 'constraint', concat_ws('|', con.oid, con.conname, con.contype, con.conrelid,
                                   con.conkey::text, con.confrelid)
    FROM pg_catalog.pg_constraint AS con
    JOIN relations AS r ON r.oid = con.conrelid
    UNION ALL
    SELECT 'comment', concat_ws('|', d.classoid, d.objoid, d.objsubid, d.description)
    FROM pg_catalog.pg_description AS d
    WHERE (d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objoid IN (SELECT oid FROM relations))
       OR (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
           AND d.objoid IN (SELECT oid FROM selected_schemas))
    UNION ALL
    SELECT 'view', concat_ws('|', rw.ev_class, rw.ev_action::text)
    FROM pg_catalog.pg_rewrite AS rw
    JOIN relations AS r ON r.oid = rw.ev_class
)
SELECT
    (SELECT count(*) FROM relations)::bigint AS relation_count,
    pg_catalog.md5(pg_catalog.string_agg(
        concat_ws(':', category, n, total), ',' ORDER BY category)) AS fingerprint
FROM (
    SELECT category, count(*) AS n,
           sum(pg_catalog.hashtextextended(row_text, 0)::numeric) AS total
    FROM parts
    GROUP BY category
) AS per_category
