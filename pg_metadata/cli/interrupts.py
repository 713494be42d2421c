"""Stopping a headless extraction: SIGINT and SIGTERM end the whole run, not one database.

The first signal raises KeyboardInterrupt where the run is (Dagster ends the current run as
interrupted, its steps' context managers remove staging and spool files, and the manifest is
never reached, so `latest/` is untouched); the CLI then starts no other database and exits
128 + the signal number (130 for SIGINT, 143 for SIGTERM). Later signals are only counted,
so the clean-up itself is never interrupted.

Dagster takes SIGINT (and maps SIGTERM onto it) while a run executes, so which signal came is
read from Python's signal wakeup fd by a watcher thread, which also cancels the running
statements. Nothing is blocked, so child processes (Dagster's log tailer) keep default signals.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from pg_metadata.catalog.connection import cancel_all

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Installed for the duration of an extraction (a `with` block)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raised = False
        self._previous: dict[int, object] = {}
        self._read_fd = self._write_fd = -1
        self._old_wakeup = -1

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self) -> Interrupts:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        # Python's C-level handler writes every caught signal's number to the wakeup fd,
        # whichever Python handler (ours, or Dagster's during a run) then runs: a thread
        # reading it learns which signal came and cancels the running statements at once (a
        # COPY in C would otherwise hold the main thread, and its handler, until it ends).
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._write_fd = write_fd
        self._old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="pg_metadata-signals", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._write_fd)  # ends the watcher

    def _watch(self) -> None:
        with os.fdopen(self._read_fd, "rb", buffering=0) as pipe:
            while data := pipe.read(64):
                for signum in data:
                    if signum in SIGNALS:
                        if self.signum is None:
                            self.signum = signum
                        cancel_all()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if not self._raised:
            self._raised = True
            raise KeyboardInterrupt
