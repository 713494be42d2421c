-- Every relation of the selected schemas: ordinary, partitioned and foreign tables, partitions of
-- any depth, views and materialized views. One row per relation; all joins are on OIDs.
-- Sizes and row counts are estimates from the catalog (relpages/reltuples, as of the last VACUUM
-- or ANALYZE), so no relation is opened or locked; with exact_sizes, pg_total_relation_size is
-- asked instead (it opens each relation). Constraints, indexes, triggers, row-level security
-- policies and inheritance parents come along as JSON arrays, aggregated once per relation.
WITH RECURSIVE
--@include selected_schemas
,
relations AS NOT MATERIALIZED (
    SELECT c.oid, c.relname, c.relnamespace, s.nspname, c.relkind, c.relispartition
    FROM pg_catalog.pg_class AS c
    JOIN selected_schemas AS s ON s.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
),
-- (ancestor, descendant) pairs of every partition tree
partition_tree AS (
    SELECT i.inhparent AS ancestor, i.inhrelid AS relid
    FROM pg_catalog.pg_inherits AS i
    JOIN pg_catalog.pg_class AS p ON p.oid = i.inhparent AND p.relkind = 'p'
    UNION ALL
    SELECT t.ancestor, i.inhrelid
    FROM partition_tree AS t
    JOIN pg_catalog.pg_inherits AS i ON i.inhparent = t.relid
),
-- index pages per table, for every table of the database (one hash aggregate over pg_index), so
-- a partitioned table sums its leaves exactly as an ordinary table counts itself: heap + TOAST +
-- indexes, wherever the leaves live
index_pages AS (
    SELECT x.indrelid, sum(ic.relpages)::bigint AS pages
    FROM pg_catalog.pg_index AS x
    JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid
    GROUP BY x.indrelid
),
own_stats AS (
    SELECT r.oid,
           CASE WHEN c.relkind IN ('r', 'm') AND c.reltuples >= 0 THEN c.reltuples::bigint END AS row_count,
           CASE WHEN c.relkind NOT IN ('r', 'm') THEN NULL
                WHEN %(exact_sizes)s::boolean THEN pg_catalog.pg_total_relation_size(c.oid)
                ELSE (c.relpages::bigint + COALESCE(tc.relpages, 0) + COALESCE(ip.pages, 0))
                     * pg_catalog.current_setting('block_size')::bigint
           END AS size_bytes
    FROM relations AS r
    JOIN pg_catalog.pg_class AS c ON c.oid = r.oid
    LEFT JOIN pg_catalog.pg_class AS tc ON tc.oid = c.reltoastrelid
    LEFT JOIN index_pages AS ip ON ip.indrelid = r.oid
),
-- partitioned tables: totals over their leaf partitions
tree_stats AS (
    SELECT t.ancestor AS oid,
           sum(c.reltuples::bigint) FILTER (WHERE c.relkind = 'r' AND c.reltuples >= 0) AS row_count,
           sum(CASE WHEN %(exact_sizes)s::boolean THEN pg_catalog.pg_total_relation_size(c.oid)
                    ELSE (c.relpages::bigint + COALESCE(tc.relpages, 0) + COALESCE(ip.pages, 0))
                         * pg_catalog.current_setting('block_size')::bigint END)
               FILTER (WHERE c.relkind = 'r') AS size_bytes
    FROM partition_tree AS t
    JOIN relations AS r ON r.oid = t.ancestor
    JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
    LEFT JOIN pg_catalog.pg_class AS tc ON tc.oid = c.reltoastrelid
    LEFT JOIN index_pages AS ip ON ip.indrelid = t.relid
    GROUP BY t.ancestor
),
ancestry AS (
    SELECT t.relid,
           count(*) AS depth,
           max(t.ancestor::bigint) FILTER (WHERE NOT a.relispartition) AS root_oid
    FROM partition_tree AS t
    JOIN relations AS r ON r.oid = t.relid
    JOIN pg_catalog.pg_class AS a ON a.oid = t.ancestor
    GROUP BY t.relid
),
child_counts AS (
    SELECT i.inhparent, count(*) AS children
    FROM pg_catalog.pg_inherits AS i
    JOIN relations AS r ON r.oid = i.inhparent
    WHERE r.relkind = 'p'
    GROUP BY i.inhparent
),
-- relations each view or materialized view reads from (its rewrite rule's dependencies); for
-- every view of the database, the final join keeps the selected ones: joined to `relations`
-- here, the planner (expecting ~10 rows) looped over the selected schemas for every rule
-- dependency, 394M comparisons and 54 s with 2,000 schemas and 40,000 views
view_dependencies AS (
    SELECT rw.ev_class AS view_oid,
           json_agg(DISTINCT jsonb_build_array(dn.nspname, dc.relname))::text AS depends_on
    FROM pg_catalog.pg_rewrite AS rw
    JOIN pg_catalog.pg_class AS vc ON vc.oid = rw.ev_class AND vc.relkind IN ('v', 'm')
    JOIN pg_catalog.pg_depend AS dep
        ON dep.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND dep.objid = rw.oid
       AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND dep.refobjid <> rw.ev_class
    JOIN pg_catalog.pg_class AS dc ON dc.oid = dep.refobjid
    JOIN pg_catalog.pg_namespace AS dn ON dn.oid = dc.relnamespace
    GROUP BY rw.ev_class
),
constraints AS (
    SELECT con.conrelid AS relid,
           json_agg(json_build_object(
               'name', con.conname,
               'type', CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE'
                                        WHEN 'f' THEN 'FOREIGN KEY' WHEN 'c' THEN 'CHECK'
                                        WHEN 'x' THEN 'EXCLUDE' WHEN 't' THEN 'TRIGGER'
                                        ELSE con.contype::text END,
               'definition', pg_catalog.pg_get_constraintdef(con.oid, true))
               ORDER BY con.conname)::text AS items
    FROM pg_catalog.pg_constraint AS con
    JOIN relations AS r ON r.oid = con.conrelid
    GROUP BY con.conrelid
),
-- relations someone holds, or waits for, in ACCESS EXCLUSIVE mode (an ALTER, a DROP, a VACUUM
-- FULL): pg_get_indexdef briefly locks the index's table, so it would wait behind them (and make
-- the application's queries queue behind us); their indexes come without a definition
exclusively_locked AS (
    SELECT l.relation
    FROM pg_catalog.pg_locks AS l
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_catalog.pg_database
                        WHERE datname = pg_catalog.current_database())
),
indexes AS (
    SELECT x.indrelid AS relid,
           json_agg(json_build_object(
               'name', ic.relname,
               'definition',
               CASE WHEN x.indrelid IN (SELECT relation FROM exclusively_locked)
                      OR x.indexrelid IN (SELECT relation FROM exclusively_locked) THEN NULL
                    ELSE pg_catalog.pg_get_indexdef(x.indexrelid) END,
               'unique', x.indisunique, 'primary', x.indisprimary,
               'partial', x.indpred IS NOT NULL)
               ORDER BY ic.relname)::text AS items
    FROM pg_catalog.pg_index AS x
    JOIN relations AS r ON r.oid = x.indrelid
    JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid
    GROUP BY x.indrelid
),
triggers AS (
    SELECT tg.tgrelid AS relid,
           json_agg(json_build_object(
               'name', tg.tgname, 'definition', pg_catalog.pg_get_triggerdef(tg.oid, true),
               'enabled', tg.tgenabled <> 'D')
               ORDER BY tg.tgname)::text AS items
    FROM pg_catalog.pg_trigger AS tg
    JOIN relations AS r ON r.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal
    GROUP BY tg.tgrelid
),
policies AS (
    SELECT po.polrelid AS relid,
           json_agg(json_build_object(
               'name', po.polname,
               'command', CASE po.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                         WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE'
                                         ELSE 'ALL' END,
               'permissive', po.polpermissive,
               'roles', (SELECT json_agg(CASE WHEN ro = 0 THEN 'public'
                                              ELSE pg_catalog.pg_get_userbyid(ro) END)
                         FROM unnest(po.polroles) AS ro),
               'using', pg_catalog.pg_get_expr(po.polqual, po.polrelid, true),
               'with_check', pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid, true))
               ORDER BY po.polname)::text AS items
    FROM pg_catalog.pg_policy AS po
    JOIN relations AS r ON r.oid = po.polrelid
    GROUP BY po.polrelid
),
-- table inheritance (INHERITS), not partitioning
inherits AS (
    SELECT i.inhrelid AS relid,
           json_agg(json_build_array(pn.nspname, p.relname) ORDER BY i.inhseqno)::text AS items
    FROM pg_catalog.pg_inherits AS i
    JOIN relations AS r ON r.oid = i.inhrelid AND NOT r.relispartition
    JOIN pg_catalog.pg_class AS p ON p.oid = i.inhparent
    JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.relnamespace
    GROUP BY i.inhrelid
),
live_columns AS (
    SELECT a.attrelid, count(*) AS columns
    FROM pg_catalog.pg_attribute AS a
    JOIN relations AS r ON r.oid = a.attrelid
    WHERE a.attnum > 0 AND NOT a.attisdropped
    GROUP BY a.attrelid
)
SELECT
    pg_catalog.current_database()                          AS database_name,
    r.nspname                                              AS schema_name,
    r.oid::bigint                                          AS table_oid,
    r.relname                                              AS table_name,
    pg_catalog.quote_ident(r.relname)                      AS sql_name,
    r.relkind::text                                        AS table_kind,
    CASE r.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE'
                   WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'v' THEN 'VIEW'
                   WHEN 'm' THEN 'MATERIALIZED VIEW' END   AS table_type,
    pg_catalog.pg_get_userbyid(c.relowner)                 AS owner,
    d.description                                          AS comment,
    COALESCE(lc.columns, 0)::bigint                        AS column_count,
    COALESCE(ts.row_count, os.row_count)                   AS row_count,
    CASE WHEN r.relkind = 'v' THEN 0
         ELSE COALESCE(ts.size_bytes, os.size_bytes) END    AS size_bytes,
    c.relpersistence::text                                 AS persistence,
    c.reloftype <> 0                                       AS is_typed,
    -- views and foreign tables: pg_relation_is_updatable opens them (and a view's base
    -- relations), so it is read apart, in short transactions (view_definitions.sql)
    CASE WHEN r.relkind IN ('r', 'p') THEN TRUE
         WHEN r.relkind IN ('v', 'f') THEN NULL
         ELSE FALSE END                                    AS is_insertable_into,
    r.relispartition                                       AS is_partition,
    r.relkind = 'p'                                        AS is_partitioned,
    pt.partstrat::text                                     AS partition_strategy,
    CASE WHEN r.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(r.oid) END AS partition_key,
    pt.partnatts::integer                                  AS partition_key_column_count,
    pg_catalog.array_to_string(pt.partattrs::int2[], ' ')  AS partition_key_attnums,
    CASE WHEN r.relkind = 'p' THEN COALESCE(cc.children, 0) END::bigint AS partition_count,
    CASE WHEN r.relispartition
         THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid, true) END AS partition_bound,
    pn.nspname                                             AS parent_schema,
    pc.relname                                             AS parent_name,
    pc.relispartition                                      AS parent_is_partition,
    (pc.relnamespace IN (SELECT oid FROM selected_schemas)
     AND (%(temp_table_regex)s::text IS NULL OR pc.relname !~ %(temp_table_regex)s::text))
                                                           AS parent_selected,
    an.depth::integer                                      AS partition_depth,
    rn.nspname                                             AS root_schema,
    rc.relname                                             AS root_name,
    (rc.relnamespace IN (SELECT oid FROM selected_schemas)
     AND (%(temp_table_regex)s::text IS NULL OR rc.relname !~ %(temp_table_regex)s::text))
                                                           AS root_selected,
    -- the text pg_views/pg_matviews show (Atlan's app reads those), pg_get_viewdef(oid),
    -- locks the view and what it reads until the transaction ends: it is read apart, in
    -- short transactions (view_definitions.sql); NULL here
    NULL::text                                             AS view_definition,
    vd.depends_on                                          AS view_dependencies,
    fs.srvname                                             AS foreign_server,
    fw.fdwname                                             AS foreign_data_wrapper,
    pg_catalog.array_to_string(ft.ftoptions, ', ')         AS foreign_options,
    c.relrowsecurity                                       AS row_security,
    con.items                                              AS constraints,
    ix.items                                               AS indexes,
    tg.items                                               AS triggers,
    po.items                                               AS policies,
    inh.items                                              AS inherits
FROM relations AS r
JOIN pg_catalog.pg_class AS c ON c.oid = r.oid
LEFT JOIN pg_catalog.pg_description AS d
    ON d.objoid = r.oid AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
LEFT JOIN live_columns AS lc ON lc.attrelid = r.oid
LEFT JOIN view_dependencies AS vd ON vd.view_oid = r.oid
LEFT JOIN own_stats AS os ON os.oid = r.oid
LEFT JOIN tree_stats AS ts ON ts.oid = r.oid
LEFT JOIN pg_catalog.pg_partitioned_table AS pt ON pt.partrelid = r.oid
LEFT JOIN child_counts AS cc ON cc.inhparent = r.oid
LEFT JOIN pg_catalog.pg_inherits AS pi ON r.relispartition AND pi.inhrelid = r.oid
LEFT JOIN pg_catalog.pg_class AS pc ON pc.oid = pi.inhparent
LEFT JOIN pg_catalog.pg_namespace AS pn ON pn.oid = pc.relnamespace
LEFT JOIN ancestry AS an ON an.relid = r.oid
LEFT JOIN pg_catalog.pg_class AS rc ON rc.oid = an.root_oid::oid
LEFT JOIN pg_catalog.pg_namespace AS rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_catalog.pg_foreign_table AS ft ON ft.ftrelid = r.oid
LEFT JOIN pg_catalog.pg_foreign_server AS fs ON fs.oid = ft.ftserver
LEFT JOIN pg_catalog.pg_foreign_data_wrapper AS fw ON fw.oid = fs.srvfdw
LEFT JOIN constraints AS con ON con.relid = r.oid
LEFT JOIN indexes AS ix ON ix.relid = r.oid
LEFT JOIN triggers AS tg ON tg.relid = r.oid
LEFT JOIN policies AS po ON po.relid = r.oid
LEFT JOIN inherits AS inh ON inh.relid = r.oid
ORDER BY r.nspname, r.relname
