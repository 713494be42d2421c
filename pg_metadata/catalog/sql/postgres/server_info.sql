-- Who and where we are: the server version (numeric and as shown), the role and the database.
SELECT
    pg_catalog.current_setting('server_version_num')::integer AS version_num,
    pg_catalog.current_setting('server_version')              AS version,
    current_user::text                                        AS role_name,
    pg_catalog.current_database()::text                       AS database_name
