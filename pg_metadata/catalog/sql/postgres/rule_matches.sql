-- For each include rule (database regex, schema regex), whether any visible database and any
-- visible schema of such a database match it, with PostgreSQL's own regular expressions (the
-- ones the catalog queries use), so the check agrees with what an extraction would select.
SELECT
    rule.n::integer                                                        AS rule_number,
    COALESCE(bool_or(seen.db ~ rule.db_rx), FALSE)                         AS database_found,
    COALESCE(bool_or(seen.db ~ rule.db_rx AND seen.sch ~ rule.sch_rx), FALSE) AS schema_found
FROM unnest(%(include_db)s::text[], %(include_schema)s::text[]) WITH ORDINALITY AS rule(db_rx, sch_rx, n)
LEFT JOIN unnest(%(seen_db)s::text[], %(seen_schema)s::text[]) AS seen(db, sch) ON TRUE
GROUP BY rule.n
ORDER BY rule.n
