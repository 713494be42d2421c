-- Our session's timeouts, run once on every connection before anything else: each of ours,
-- unless the value the session started with (postgresql.conf, ALTER DATABASE/ROLE ... SET) is
-- stricter, so a DBA's tighter limit for the extractor role or the database stays in force.
-- 0 means "no limit" on both sides. pg_settings reports these three in milliseconds.
-- And JIT off (where the server has it, 11+): compiling our catalog queries costs the server
-- ~0.4 s of CPU each and speeds up nothing (the tables query at 50k relations: 5.9 s without,
-- 6.9 s with; bench/RESULTS.md).
SELECT pg_catalog.set_config(
           s.name,
           COALESCE(LEAST(NULLIF(s.setting::bigint, 0), NULLIF(w.ms, 0)), 0)::text,
           false)
FROM pg_catalog.pg_settings AS s
JOIN (VALUES ('statement_timeout', %(statement_timeout)s::bigint),
             ('lock_timeout', %(lock_timeout)s::bigint),
             ('idle_in_transaction_session_timeout', %(idle_in_transaction_session_timeout)s::bigint))
     AS w(name, ms) ON w.name = s.name
UNION ALL
SELECT pg_catalog.set_config(s.name, 'off', false)
FROM pg_catalog.pg_settings AS s
WHERE s.name = 'jit'
