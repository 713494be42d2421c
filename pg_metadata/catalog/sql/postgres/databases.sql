-- Every connectable, non-template database on the server that the filters select.
-- Runs once per server, on the first database. Parameters: see pg_metadata/filters.py.
SELECT
    d.oid::bigint                                   AS database_oid,
    d.datname                                       AS database_name,
    pg_catalog.pg_get_userbyid(d.datdba)            AS owner,
    pg_catalog.pg_encoding_to_char(d.encoding)      AS encoding,
    d.datcollate                                    AS collation,
    d.datctype                                      AS ctype,
    sd.description                                  AS comment,
    pg_catalog.pg_database_size(d.oid)              AS size_bytes,
    d.datconnlimit                                  AS connection_limit,
    pg_catalog.current_setting('server_version')    AS server_version
FROM pg_catalog.pg_database AS d
LEFT JOIN pg_catalog.pg_shdescription AS sd
    ON sd.objoid = d.oid AND sd.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass
WHERE d.datallowconn
  AND NOT d.datistemplate
  AND pg_catalog.has_database_privilege(d.oid, 'CONNECT')
  AND (pg_catalog.cardinality(%(include_db)s::text[]) = 0
       OR EXISTS (SELECT 1 FROM unnest(%(include_db)s::text[]) AS f(db) WHERE d.datname ~ f.db))
  AND NOT EXISTS (SELECT 1 FROM unnest(%(exclude_db_all)s::text[]) AS f(db) WHERE d.datname ~ f.db)
ORDER BY d.datname
