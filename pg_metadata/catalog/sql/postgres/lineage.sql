-- What each view and materialized view reads, exactly as PostgreSQL recorded it when the view
-- was created: the dependencies of its rewrite rule in pg_depend, on whole relations and on
-- single columns. One row per view; the lists are JSON. Views' own columns come in attnum
-- order, so the n-th output column of the definition is the n-th column of the view.
WITH
--@include selected_schemas
,
relations AS NOT MATERIALIZED (
    SELECT c.oid, c.relname, s.nspname, c.relkind
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
),
views AS (
    SELECT r.oid, r.relname, r.nspname, r.relkind FROM relations AS r WHERE r.relkind IN ('v', 'm')
),
reads AS (
    SELECT rw.ev_class AS view_oid, dep.refobjid AS relid, dep.refobjsubid AS attnum
    FROM pg_catalog.pg_rewrite AS rw
    JOIN views AS v ON v.oid = rw.ev_class
    JOIN pg_catalog.pg_depend AS dep
        ON dep.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND dep.objid = rw.oid
       AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND dep.refobjid <> rw.ev_class
),
sources AS (
    SELECT d.view_oid,
           json_agg(DISTINCT jsonb_build_array(n.nspname, c.relname, c.relkind::text,
                                               c.relispartition,
                                               c.oid IN (SELECT oid FROM relations)))::text AS items
    FROM reads AS d
    JOIN pg_catalog.pg_class AS c ON c.oid = d.relid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    GROUP BY d.view_oid
),
used_columns AS (
    SELECT d.view_oid,
           json_agg(DISTINCT jsonb_build_array(n.nspname, c.relname, a.attname))::text AS items
    FROM reads AS d
    JOIN pg_catalog.pg_class AS c ON c.oid = d.relid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.relid AND a.attnum = d.attnum
    WHERE d.attnum > 0
    GROUP BY d.view_oid
),
view_columns AS (
    SELECT a.attrelid AS view_oid, json_agg(a.attname ORDER BY a.attnum)::text AS items
    FROM pg_catalog.pg_attribute AS a
    JOIN views AS v ON v.oid = a.attrelid
    WHERE a.attnum > 0 AND NOT a.attisdropped
    GROUP BY a.attrelid
)
SELECT
    pg_catalog.current_database()      AS database_name,
    v.nspname                          AS schema_name,
    v.oid::bigint                      AS view_oid,
    v.relname                          AS view_name,
    v.relkind::text                    AS view_kind,
    vc.items                           AS columns,
    s.items                            AS sources,
    u.items                            AS used_columns
FROM views AS v
LEFT JOIN view_columns AS vc ON vc.view_oid = v.oid
LEFT JOIN sources AS s ON s.view_oid = v.oid
LEFT JOIN used_columns AS u ON u.view_oid = v.oid
ORDER BY v.nspname, v.relname
