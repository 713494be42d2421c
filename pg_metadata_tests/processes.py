"""The CLI as a background process a test can pause and watch from the server's side."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def start_extract(database: str, env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen:
    """`pg-metadata extract` of one database into `out`, in a process group of its own (so
    SIGSTOP/SIGCONT reach every thread and child)."""
    return subprocess.Popen(
        [
            str(BIN / "pg-metadata"),
            "extract",
            "--include",
            f'{{"^{database}$": "*"}}',
            "--output",
            "out",
            *extra,
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(proc: subprocess.Popen, cur: Any, count_query: str, timeout: float = 120) -> None:
    """Poll the server until `count_query` counts something, while the process still runs."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        cur.execute(count_query)
        if cur.fetchone()[0]:
            return


def pause(proc: subprocess.Popen, paused: bool = True) -> None:
    """SIGSTOP (or SIGCONT) the process group."""
    os.killpg(proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)


def end(proc: subprocess.Popen) -> None:
    """Kill it if it still runs (after a failed assertion)."""
    if proc.poll() is None:
        pause(proc, False)
        proc.kill()
