-- Compile every filter regex with the server's own engine (the one the catalog queries use):
-- an invalid one raises "invalid regular expression: ...". Matching the empty string is all
-- it costs.
SELECT pg_catalog.count(*) AS matched
FROM pg_catalog.unnest(%(patterns)s::text[]) AS p(pattern)
WHERE '' ~ p.pattern
