-- Every live column (attnum > 0, not dropped) of every relation that tables.sql returns.
-- Key flags are aggregated per (relation, column) first, so a column in several constraints
-- still yields exactly one row. Sizes and precision follow information_schema.columns.
WITH
--@include selected_schemas
,
relations AS (
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
partition_keys AS (
    SELECT pt.partrelid AS relid, k.attnum, k.ord
    FROM pg_catalog.pg_partitioned_table AS pt
    JOIN relations AS r ON r.oid = pt.partrelid
    CROSS JOIN LATERAL unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
    WHERE k.attnum <> 0
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
    CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END AS default_value,
    CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END
                                                               AS generation_expression,
    a.attgenerated <> ''                                       AS is_generated,
    a.attidentity <> ''                                        AS is_identity,
    CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END AS identity_generation,
    iseq.seqcycle                                              AS identity_cycle,
    information_schema._pg_char_max_length(information_schema._pg_truetypid(a.*, t.*),
                                           information_schema._pg_truetypmod(a.*, t.*))::bigint
                                                               AS max_length,
    information_schema._pg_char_octet_length(information_schema._pg_truetypid(a.*, t.*),
                                             information_schema._pg_truetypmod(a.*, t.*))::bigint
                                                               AS octet_length,
    information_schema._pg_numeric_precision(information_schema._pg_truetypid(a.*, t.*),
                                             information_schema._pg_truetypmod(a.*, t.*))::integer
                                                               AS numeric_precision,
    information_schema._pg_numeric_precision_radix(information_schema._pg_truetypid(a.*, t.*),
                                                   information_schema._pg_truetypmod(a.*, t.*))::integer
                                                               AS numeric_precision_radix,
    information_schema._pg_numeric_scale(information_schema._pg_truetypid(a.*, t.*),
                                         information_schema._pg_truetypmod(a.*, t.*))::integer
                                                               AS numeric_scale,
    COALESCE(kf.is_primary, FALSE)                             AS is_primary,
    COALESCE(kf.is_foreign, FALSE)                             AS is_foreign,
    COALESCE(kf.is_unique, FALSE)                              AS is_unique,
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
LEFT JOIN partition_keys AS pk ON pk.relid = a.attrelid AND pk.attnum = a.attnum
LEFT JOIN identity_sequences AS iseq ON iseq.relid = a.attrelid AND iseq.attnum = a.attnum
LEFT JOIN pg_catalog.pg_collation AS co ON co.oid = a.attcollation
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY r.nspname, r.relname, a.attnum
