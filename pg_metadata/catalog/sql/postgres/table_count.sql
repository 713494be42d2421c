-- How many relations of the current database the filters select, as the tables query reads them.
WITH
--@include selected_schemas
SELECT count(*)::bigint AS table_count
FROM pg_catalog.pg_class AS c
JOIN selected_schemas AS s ON s.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND (%(temp_table_regex)s::text IS NULL OR c.relname !~ %(temp_table_regex)s::text)
