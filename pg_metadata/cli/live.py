"""The live progress line of a terminal: per database, what it is doing, rows read, entities
written and time so far, rewritten in place a few times a second."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Any, TextIO

from pg_metadata import telemetry

CLEAR = "\r\x1b[K"
LABELS = {  # span names, as the user reads them
    "pg_metadata.list_databases": "listing databases",
    "pg_metadata.connect": "connecting",
    "pg_metadata.read_catalog": "reading the catalog",
    "pg_metadata.query": "reading",
    "pg_metadata.write": "writing",
    "pg_metadata.checks": "checking",
    "pg_metadata.lineage": "lineage",
    "pg_metadata.manifest": "publishing",
}


class LiveLine:
    """One line on a terminal, redrawn every `interval` seconds while a database runs; does
    nothing when the stream is not a terminal."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.25) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.interval = interval
        self._lock = threading.Lock()
        self._label = ""
        self._phase = ""
        self._open: list[str] = []  # phases begun and not ended (two threads may add)
        self._rows = 0
        self._entities = 0
        self._started = 0.0
        self._shown = False
        self._counts = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, label: str, counts: bool = True) -> None:
        """A database begins: show its line until `done` (without `counts`, only the label and
        the time: databases running in other processes send no events here)."""
        if not self.enabled:
            return
        with self._lock:
            self._label, self._phase, self._rows, self._entities = label, "starting", 0, 0
            self._counts = counts
            self._open = []
            self._started = time.monotonic()
        if self._thread is None:
            telemetry.add_listener(self.event)
            self._stop.clear()
            self._thread = threading.Thread(target=self._tick, name="pg_metadata-live", daemon=True)
            self._thread.start()

    def event(self, event: str, fields: dict[str, Any]) -> None:
        """A telemetry event of the running database."""
        with self._lock:
            if event in ("phase", "phase_end") and fields["name"] in LABELS:
                attributes = fields["attributes"]
                what = attributes.get("pg_metadata.query") or attributes.get("pg_metadata.path")
                label = LABELS[fields["name"]]
                label = f"{label} {what}" if what else label
                if event == "phase":
                    self._open.append(label)
                elif label in self._open:
                    self._open.remove(label)
                self._phase = self._open[-1] if self._open else self._phase
            elif event == "rows":
                self._rows += fields["rows"]
            elif event == "written" and fields["type_name"]:
                self._entities += fields["rows"]

    def above(self, text: str, stream: TextIO | None = None) -> None:
        """Print a whole line (to `stream`, stderr by default) above the live line."""
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False
            print(text, file=stream or self.stream, flush=True)

    def done(self) -> None:
        """The database ended: clear its line (its summary is printed in its place)."""
        if not self.enabled:
            return
        with self._lock:
            self._label = ""
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False

    def close(self) -> None:
        """Stop redrawing."""
        self.done()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            telemetry.remove_listener(self.event)

    def render(self) -> str:
        """The line as it stands."""
        elapsed = time.monotonic() - self._started
        if not self._counts:
            return f"pg-metadata: {self._label}, {elapsed:.1f}s"[: max(_width() - 1, 20)]
        text = (
            f"pg-metadata: {self._label}: {self._phase}, {self._rows:,} rows read, "
            f"{self._entities:,} entities written, {elapsed:.1f}s"
        )
        return text[: max(_width() - 1, 20)]

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._label:
                    self.stream.write(CLEAR + self.render())
                    self.stream.flush()
                    self._shown = True


def _width() -> int:
    return shutil.get_terminal_size((120, 20)).columns
