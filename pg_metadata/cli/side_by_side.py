"""Several databases of one source at once, each in a worker process forked from the CLI.

A small database costs about a second of single-core Python, nearly all of it Dagster's per
run and per event (bench/RESULTS.md), so a server with hundreds of tenant databases is bound by
one core unless runs go side by side. The workers are forked after discovery: they inherit the
definitions and, without DAGSTER_HOME, the in-memory instance that holds the discovery run
(the partitions and the databases asset the entity step reads). With DAGSTER_HOME each worker
opens the instance again, so no storage connection is shared across processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pg_metadata.cli.interrupts import Interrupts

# (database name) -> (its outcome, whether a signal interrupted it); runs in a worker
RunDatabase = Callable[[str], tuple[Any, bool]]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _WorkerInterrupts(Interrupts):
    """A worker's signals: a stop interrupts the database it is running (Dagster ends that run
    as interrupted and cleans up), and only marks an idle worker as stopped."""

    busy = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.busy:
            super()._handle(signum, frame)
        elif self.signum is None:
            self.signum = signum


@dataclass
class _Worker:
    run: RunDatabase
    after_fork: Callable[[], None]
    interrupts: _WorkerInterrupts | None = None


_WORKER: _Worker | None = None  # set in the parent just before the fork, used in the workers


def _init(pids: Any) -> None:
    assert _WORKER is not None
    signal.set_wakeup_fd(-1)  # the parent's pipe: its watcher must not hear our signals
    _WORKER.interrupts = _WorkerInterrupts().__enter__()  # lives as long as the worker
    _WORKER.after_fork()
    pids.put(os.getpid())


def _run(name: str) -> tuple[Any, bool, float]:
    assert _WORKER is not None and _WORKER.interrupts is not None
    from pg_metadata import telemetry

    interrupts = _WORKER.interrupts
    if interrupts.stopped:  # taken from the queue after the parent's stop
        return None, True, 0.0
    started = time.monotonic()
    interrupts.busy = True
    try:
        outcome, interrupted = _WORKER.run(name)
    except KeyboardInterrupt:
        outcome, interrupted = None, True
    finally:
        interrupts.busy = False
        telemetry.flush()  # a worker ends with os._exit: nothing is flushed at exit
    return outcome, interrupted or interrupts.stopped, time.monotonic() - started


@dataclass
class Finished:
    """A database whose run ended: its outcome, or why its worker gave none."""

    name: str
    outcome: Any
    seconds: float
    error: str = ""


def run_side_by_side(
    names: list[str],
    jobs: int,
    run: RunDatabase,
    after_fork: Callable[[], None],
    interrupts: Interrupts | None,
) -> Generator[Finished, None, None]:
    """Fork `jobs` workers now (no other thread of ours may be writing then), then give each
    database as it finishes; on a stop signal no other database is started, the running
    ones are interrupted, and it ends without them."""
    global _WORKER
    context = multiprocessing.get_context("fork")
    pids = context.SimpleQueue()
    _WORKER = _Worker(run, after_fork)
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init, initargs=(pids,))
    try:
        started = time.monotonic()
        pending: dict[Future, str] = {pool.submit(_run, n): n for n in names}  # forks here
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        _WORKER = None
    return _finished(pool, pending, pids, interrupts, started)


def _finished(
    pool: ProcessPoolExecutor,
    pending: dict[Future, str],
    pids: Any,
    interrupts: Interrupts | None,
    started: float,
) -> Generator[Finished, None, None]:
    try:
        while pending:
            try:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # our handler, on the first SIGINT/SIGTERM
                done = set()
            stopping = interrupts is not None and interrupts.stopped
            if stopping:
                for future in pending:
                    future.cancel()
                _stop(pids)
            for future in done:
                name = pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    outcome, interrupted, seconds = future.result()
                except Exception as exc:  # the worker died (killed, out of memory)
                    if not stopping:
                        yield Finished(name, None, time.monotonic() - started, _died(exc))
                    continue
                if interrupted and interrupts is not None and not interrupts.stopped:
                    interrupts.signum = signal.SIGINT  # a worker's run took the SIGINT
                if outcome is not None and not interrupted:
                    yield Finished(name, outcome, seconds)
            if stopping:
                pending = {f: n for f, n in pending.items() if not f.cancelled()}
    finally:
        if interrupts is not None and interrupts.stopped:  # also when the caller was stopped
            _stop(pids)
        pool.shutdown(wait=True, cancel_futures=True)


def _died(exc: Exception) -> str:
    return (
        f"the worker process extracting it ended abruptly ({exc or type(exc).__name__}); "
        "check the system log for an out-of-memory kill, or run with --jobs 1"
    )


def _stop(pids: Any) -> None:
    """Pass the stop on to each worker once: each put its pid in the queue once, when it
    started (a terminal's Ctrl-C reached them already: a second signal is only counted).
    Dagster ends a worker's run on SIGINT whichever came."""
    while not pids.empty():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids.get(), signal.SIGINT)
