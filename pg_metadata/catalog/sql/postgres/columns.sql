-- Every live column (attnum > 0, not dropped) of every relation that tables.sql returns.
-- Key flags are aggregated per (relation, column) first, so a column in several constraints
-- still yields exactly one row. Sizes and precision follow information_schema.columns.
WITH
--@include selected_schemas
,
relations AS NOT MATERIALIZED (
    SELECT c.oid, c.relname, s.nspname, c.relkind, c.relispartition
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
),
key_flags AS (
    SELECT con.conrelid AS relid, k.attnum,
           bool_or(con.contype = 'p') AS is_primary,
           bool_or(con.contype = 'f') AS is_foreign,
           bool_or(con.contype = 'u') AS is_unique
    FROM pg_catalog.pg_constraint AS con
    JOIN relations AS r ON r.oid = con.conrelid
    CROSS JOIN LATERAL unnest(con.conkey) AS k(attnum)
    WHERE con.contype IN ('p', 'f', 'u')
    GROUP BY con.conrelid, k.attnum
),
indexed AS (
    SELECT DISTINCT x.indrelid AS relid, k.attnum
    FROM pg_catalog.pg_index AS x
    JOIN relations AS r ON r.oid = x.indrelid
    CROSS JOIN LATERAL unnest(x.indkey::int2[]) AS k(attnum)
    WHERE k.attnum > 0
),
partition_keys AS (
    SELECT pt.partrelid AS relid, k.attnum, k.ord
    FROM pg_catalog.pg_partitioned_table AS pt
    JOIN relations AS r ON r.oid = pt.partrelid
    CROSS JOIN LATERAL unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
    WHERE k.attnum <> 0
),
encoding AS (
    SELECT pg_catalog.pg_encoding_max_length(d.encoding) AS max_bytes
    FROM pg_catalog.pg_database AS d
    WHERE d.datname = pg_catalog.current_database()
),
identity_sequences AS (
    SELECT dep.refobjid AS relid, dep.refobjsubid AS attnum, sq.seqcycle
    FROM pg_catalog.pg_depend AS dep
    JOIN relations AS r ON r.oid = dep.refobjid
    JOIN pg_catalog.pg_sequence AS sq ON sq.seqrelid = dep.objid
    WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND dep.deptype = 'i'
)
SELECT
    pg_catalog.current_database()                              AS database_name,
    r.nspname                                                  AS schema_name,
    r.oid::bigint                                              AS table_oid,
    r.relname                                                  AS table_name,
    r.relkind::text                                            AS table_kind,
    r.relispartition                                           AS table_is_partition,
    a.attname                                                  AS column_name,
    a.attnum::integer                                          AS ordinal_position,
    t.typname                                                  AS data_type,
    pg_catalog.format_type(a.atttypid, a.atttypmod)            AS formatted_type,
    pg_catalog.format_type(a.atttypid, NULL)                   AS type_name,
    t.typcategory::text                                        AS type_category,
    NOT a.attnotnull                                           AS is_nullable,
    -- A default never references a column, so it deparses without its relation (relid 0):
    -- with the relation, pg_get_expr sets up a deparsing context for the table on every call
    -- (3-4 s of a million-column read, its critical path); same text. A generated column's
    -- expression does reference columns, and keeps its relation.
    CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, 0) END AS default_value,
    CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END
                                                               AS generation_expression,
    a.attgenerated <> ''                                       AS is_generated,
    a.attidentity <> ''                                        AS is_identity,
    CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END AS identity_generation,
    iseq.seqcycle                                              AS identity_cycle,
    -- information_schema.columns' rules, written inline: calling its helper functions with
    -- whole-row arguments costs seconds on a million columns.
    CASE WHEN tm.typmod = -1 THEN NULL
         WHEN tm.typid IN (1042, 1043) THEN tm.typmod - 4          -- char(n), varchar(n)
         WHEN tm.typid IN (1560, 1562) THEN tm.typmod              -- bit(n), varbit(n)
    END::bigint                                                AS max_length,
    CASE WHEN tm.typid IN (25, 1042, 1043)                         -- text, char, varchar
         THEN CASE WHEN tm.typmod = -1 THEN 1073741824
                   ELSE (tm.typmod - 4) * enc.max_bytes END
    END::bigint                                                AS octet_length,
    CASE tm.typid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64  -- int2, int4, int8
                  WHEN 700 THEN 24 WHEN 701 THEN 53                -- float4, float8 mantissa
                  WHEN 1700 THEN CASE WHEN tm.typmod = -1 THEN NULL
                                      ELSE ((tm.typmod - 4) >> 16) & 65535 END
    END::integer                                               AS numeric_precision,
    CASE WHEN tm.typid IN (21, 23, 20, 700, 701) THEN 2 WHEN tm.typid = 1700 THEN 10
    END::integer                                               AS numeric_precision_radix,
    CASE WHEN tm.typid IN (21, 23, 20) THEN 0
         WHEN tm.typid = 1700 AND tm.typmod <> -1 THEN (tm.typmod - 4) & 65535
    END::integer                                               AS numeric_scale,
    COALESCE(kf.is_primary, FALSE)                             AS is_primary,
    COALESCE(kf.is_foreign, FALSE)                             AS is_foreign,
    COALESCE(kf.is_unique, FALSE)                              AS is_unique,
    ix.attnum IS NOT NULL                                      AS is_indexed,
    pk.ord IS NOT NULL                                         AS is_partition_key,
    pk.ord::integer                                            AS partition_order,
    CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
         THEN co.collname END                                  AS collation,
    ds.description                                             AS comment
FROM pg_catalog.pg_attribute AS a
JOIN relations AS r ON r.oid = a.attrelid
JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_catalog.pg_description AS ds
    ON ds.objoid = a.attrelid AND ds.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND ds.objsubid = a.attnum
LEFT JOIN key_flags AS kf ON kf.relid = a.attrelid AND kf.attnum = a.attnum
LEFT JOIN indexed AS ix ON ix.relid = a.attrelid AND ix.attnum = a.attnum
LEFT JOIN partition_keys AS pk ON pk.relid = a.attrelid AND pk.attnum = a.attnum
LEFT JOIN identity_sequences AS iseq ON iseq.relid = a.attrelid AND iseq.attnum = a.attnum
LEFT JOIN pg_catalog.pg_collation AS co ON co.oid = a.attcollation
CROSS JOIN LATERAL (  -- the type behind a domain, as information_schema resolves it
    SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END AS typid,
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod
) AS tm
CROSS JOIN encoding AS enc
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
