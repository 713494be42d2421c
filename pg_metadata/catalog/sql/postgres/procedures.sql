-- Functions, procedures, aggregates and window functions of the selected schemas, one row per
-- pg_proc entry, except members of an extension (pg_depend deptype 'e'): those are the
-- extension's, not the database's. pg_get_functiondef raises for aggregates, so aggregates get
-- a CREATE AGGREGATE rendering of pg_aggregate instead.
WITH
--@include selected_schemas
,
routines AS (
    SELECT p.oid, s.nspname, count(*) OVER (PARTITION BY p.pronamespace, p.proname) AS same_name
    FROM pg_catalog.pg_proc AS p
    JOIN selected_schemas AS s ON s.oid = p.pronamespace
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend AS d
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
          AND d.deptype = 'e')
)
SELECT
    pg_catalog.current_database()                              AS database_name,
    r.nspname                                                  AS schema_name,
    p.oid::bigint                                              AS procedure_oid,
    p.proname                                                  AS procedure_name,
    pg_catalog.oidvectortypes(p.proargtypes)                   AS argument_types,
    r.same_name > 1                                            AS is_overloaded,
    pg_catalog.pg_get_function_arguments(p.oid)                AS arguments,
    CASE WHEN p.prokind <> 'p' THEN pg_catalog.pg_get_function_result(p.oid) END AS return_type,
    p.prokind::text                                            AS kind,
    l.lanname                                                  AS language,
    p.provolatile::text                                        AS volatility,
    p.prosecdef                                                AS security_definer,
    pg_catalog.pg_get_userbyid(p.proowner)                     AS owner,
    p.prosrc                                                   AS body,
    CASE WHEN p.prokind = 'a' THEN
        pg_catalog.format('CREATE AGGREGATE %%I.%%I(%%s) (SFUNC = %%s, STYPE = %%s%%s%%s%%s)',
            r.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
            a.aggtransfn::pg_catalog.regproc, pg_catalog.format_type(a.aggtranstype, NULL),
            CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC = ' || a.aggfinalfn::pg_catalog.regproc END,
            CASE WHEN a.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || a.aggcombinefn::pg_catalog.regproc END,
            CASE WHEN a.agginitval IS NOT NULL
                 THEN ', INITCOND = ' || pg_catalog.quote_literal(a.agginitval) END)
    ELSE pg_catalog.pg_get_functiondef(p.oid) END              AS definition,
    ds.description                                             AS comment
FROM routines AS r
JOIN pg_catalog.pg_proc AS p ON p.oid = r.oid
JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
LEFT JOIN pg_catalog.pg_aggregate AS a ON a.aggfnoid = p.oid
LEFT JOIN pg_catalog.pg_description AS ds
    ON ds.objoid = p.oid AND ds.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND ds.objsubid = 0
ORDER BY r.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)
