"""The live progress line: what it says for the events a run sends, and only on a terminal."""

from __future__ import annotations

import io

from pg_metadata import telemetry
from pg_metadata.cli.live import CLEAR, LiveLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_names_the_innermost_running_phase_and_counts():
    line = LiveLine(Terminal(), interval=3600)  # no redraw thread tick during the test
    line.start("[1/2] prod/shop")
    try:
        with telemetry.phase("pg_metadata.read_catalog"):
            with telemetry.phase("pg_metadata.query", **{"pg_metadata.query": "columns"}):
                assert ": reading columns, 0 rows read" in line.render()
                telemetry.notify("rows", query="columns", rows=1_200)
            assert ": reading the catalog, 1,200 rows read" in line.render()
        with telemetry.phase("pg_metadata.write", **{"pg_metadata.path": "transformed/column"}):
            telemetry.record_output("prod", "transformed/column", "Column", 1_200, 10)
            telemetry.record_output("prod", "raw/columns", None, 1_200, 10)  # not entities
        text = line.render()
        assert text.startswith("pg-metadata: [1/2] prod/shop: writing transformed/column, ")
        assert "1,200 rows read, 1,200 entities written, " in text and text.endswith("s")
    finally:
        line.close()
    assert telemetry.notify("rows", rows=1) is None  # the listener is gone


def test_text_above_clears_the_live_line_first():
    stream = Terminal()
    line = LiveLine(stream, interval=3600)
    line._shown = True  # as after a redraw
    line.above("pg-metadata: retrying in 2 s (1/3): the server closed the connection")
    assert (
        stream.getvalue()
        == CLEAR + "pg-metadata: retrying in 2 s (1/3): the server closed the connection\n"
    )


def test_nothing_happens_off_a_terminal():
    stream = io.StringIO()
    line = LiveLine(stream, interval=0.01)
    line.start("[1/1] default/shop")
    line.done()
    line.close()
    assert not line.enabled and stream.getvalue() == ""
