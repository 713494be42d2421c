"""An SQL_ASCII database stores bytes unchecked: its non-UTF-8 comments and definitions are
extracted (valid UTF-8 kept as it is, anything else replaced by U+FFFD and counted), never a
failed database."""

from __future__ import annotations

import dagster as dg
import pytest

from pg_metadata_tests.pipeline import run_pipeline

pytestmark = pytest.mark.integration
DB = "pgm_sql_ascii"
# E'\xe9' is one byte (Latin-1 é), not UTF-8; E'\xc3\xaf' is UTF-8 ï, kept as it is
SCRIPT = r"""
CREATE TABLE t (a int, b text);
COMMENT ON TABLE t IS E'caf\xe9 cr\xe8me';
COMMENT ON COLUMN t.a IS E'na\xc3\xafve';
COMMENT ON COLUMN t.b IS E'na\xefve';
CREATE VIEW v AS SELECT a, E'd\xe9j\xe0'::text AS x FROM t;
"""


def test_non_utf8_bytes_are_replaced_and_counted(pg_cluster, tmp_path):
    pg_cluster.drop_database(DB)
    pg_cluster.execute(
        f"CREATE DATABASE {DB} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    try:
        pg_cluster.execute(SCRIPT, dbname=DB)
        with dg.instance_for_test() as instance:
            run = run_pipeline(pg_cluster, instance, target=str(tmp_path), include={f"^{DB}$": "*"})
    finally:
        pg_cluster.drop_database(DB)
    assert run.runs[DB].success
    (table,) = run.entities(DB, "transformed/table")
    assert table["attributes"]["description"] == "caf\ufffd cr\ufffdme"
    columns = {
        e["attributes"]["name"]: e["attributes"]
        for e in run.entities(DB, "transformed/column")
        if e["attributes"]["qualifiedName"].startswith(table["attributes"]["qualifiedName"] + "/")
    }
    assert columns["a"]["description"] == "na\u00efve"  # valid UTF-8: faithfully decoded
    assert columns["b"]["description"] == "na\ufffdve"
    (view,) = run.entities(DB, "transformed/view")
    assert "'d\ufffdj\ufffd'" in view["attributes"]["definition"]
    metadata = [
        e.step_output_data.metadata
        for e in run.runs[DB].all_events
        if e.is_successful_output and e.step_output_data.output_name == "tables"
    ]
    # 3 in the table comment and column b's, counted in the spool files; 2 in the view
    # definition, counted in the definitions' read (the view's columns carry no comment)
    assert metadata[0]["non_utf8_replaced"].value == 5
