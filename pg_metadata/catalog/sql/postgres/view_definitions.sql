-- Definitions of the selected views and materialized views, and whether views and foreign
-- tables take INSERTs, one batch (by OID) at a time. pg_get_viewdef and
-- pg_relation_is_updatable are the catalog functions we call that lock: AccessShareLock on the
-- relation (and on every relation a view reads), held until the transaction ends. So each batch
-- runs in a short transaction of its own on the exported snapshot, sent as one query string
-- with its BEGIN and COMMIT, and its rows are not sent back but kept in a session setting
-- (set_config(..., false) outlives the COMMIT) that is read after the COMMIT: the server never
-- waits for the client while it holds these locks, so a paused or slow extractor cannot keep
-- them. A batch also stops before its locks would take more than a quarter of the server's
-- lock table (max_locks_per_transaction x (max_connections + max_prepared_transactions),
-- shared by every session), counting each view as itself plus every relation its rule reads.
-- `list_only` names the views of a batch without reading anything that locks (to redo the
-- batch one view at a time).
WITH
--@include selected_schemas
,
candidates AS (
    SELECT
        c.oid::bigint                                      AS table_oid,
        s.nspname                                          AS schema_name,
        c.relname                                          AS relation_name,
        c.relkind,
        fw.fdwhandler,
        GREATEST(1, (
            SELECT count(DISTINCT d.refobjid)
            FROM pg_catalog.pg_rewrite AS r
            JOIN pg_catalog.pg_depend AS d
              ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
             AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            WHERE r.ev_class = c.oid))                     AS locks
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_foreign_table AS ft ON ft.ftrelid = c.oid
    LEFT JOIN pg_catalog.pg_foreign_server AS fs ON fs.oid = ft.ftserver
    LEFT JOIN pg_catalog.pg_foreign_data_wrapper AS fw ON fw.oid = fs.srvfdw
    WHERE c.relkind IN ('v', 'm', 'f')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
      AND c.oid > %(after_oid)s::oid
    ORDER BY c.oid
    LIMIT %(batch)s
),
ranked AS (
    SELECT cand.*,
           sum(cand.locks) OVER (ORDER BY cand.table_oid) AS running,
           row_number() OVER (ORDER BY cand.table_oid)    AS n
    FROM candidates AS cand
),
kept AS (
    SELECT r.*
    FROM ranked AS r
    WHERE r.n = 1
       OR r.running <= pg_catalog.current_setting('max_locks_per_transaction')::bigint
                       * (pg_catalog.current_setting('max_connections')::bigint
                          + pg_catalog.current_setting('max_prepared_transactions')::bigint) / 4
),
batch AS (
    SELECT
        k.table_oid,
        k.schema_name,
        k.relation_name,
        CASE WHEN %(list_only)s::boolean OR k.relkind = 'f'
             THEN NULL ELSE pg_catalog.pg_get_viewdef(k.table_oid::oid) END AS view_definition,
        CASE WHEN %(list_only)s::boolean THEN NULL
             WHEN k.relkind = 'v' OR (k.relkind = 'f' AND k.fdwhandler <> 0)
                 THEN (pg_catalog.pg_relation_is_updatable(k.table_oid::oid, false) & 8) = 8
             ELSE FALSE END                                AS is_insertable_into
    FROM kept AS k
)
SELECT pg_catalog.length(pg_catalog.set_config(
    'pg_metadata.view_definitions',
    pg_catalog.json_build_object(
        'rows', COALESCE((SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
                                 b.table_oid, b.schema_name, b.relation_name, b.view_definition,
                                 b.is_insertable_into) ORDER BY b.table_oid)
                          FROM batch AS b), '[]'::json),
        -- views after this batch may remain: it was cut by the lock budget, or hit its limit
        'more', (SELECT count(*) FROM kept) < (SELECT count(*) FROM ranked)
                OR (SELECT count(*) FROM ranked) = %(batch)s)::text,
    false)) AS stashed_bytes
