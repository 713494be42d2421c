"""`pg-metadata extract`: run each source's pipeline headless, in-process, database by database."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from pg_metadata.catalog.sources import Source, load_sources_file, select_sources
from pg_metadata.cli.interrupts import Interrupts
from pg_metadata.cli.live import LiveLine
from pg_metadata.cli.side_by_side import Finished, run_side_by_side, usable_cores
from pg_metadata.errors import ConfigError

# options that describe the `default` source (no sources file)
CONNECTION_OPTIONS = (
    "host",
    "port",
    "user",
    "database",
    "sslmode",
    "sslrootcert",
    "auth",
    "aws_region",
    "aws_profile",
    "role_arn",
    "external_id",
    "role_session_name",
)


@dataclass
class DatabaseResult:
    """Outcome of one database's run."""

    database: str
    ok: bool
    entities: dict[str, int] = field(default_factory=dict)
    latest: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass
class SourceResult:
    """Outcome of one source: its discovery and every database."""

    source: Source
    databases: list[DatabaseResult] = field(default_factory=list)
    error: str = ""
    jobs: int = 1  # databases run at once

    @property
    def ok(self) -> bool:
        return not self.error and all(d.ok for d in self.databases)


def sources_from_args(args: argparse.Namespace) -> list[Source]:
    """The selected sources: from --sources / PG_METADATA_SOURCES, else the `default` one."""
    filters = {
        "include": args.include,
        "exclude": args.exclude,
        "temp_table_regex": args.temp_table_regex,
        "retries": args.retries,
        "query_connections": args.query_connections,
        "statement_timeout_ms": getattr(args, "statement_timeout_ms", None),
        "lock_timeout_ms": getattr(args, "lock_timeout_ms", None),
    }
    filters = {k: v for k, v in filters.items() if v is not None}
    if args.sources:
        given = [f"--{o.replace('_', '-')}" for o in CONNECTION_OPTIONS if getattr(args, o)]
        given += ["--connection-name"] * bool(args.connection_name)
        given += ["--connection-qualified-name"] * bool(args.connection_qualified_name)
        if given:
            raise ConfigError(
                f"{given[0]} describes the default source; with a sources file ({args.sources}) "
                "set it in the file's entry instead"
            )
        sources = select_sources(load_sources_file(args.sources), args.source)
        return [s.replace(**filters) for s in sources]
    if args.source and args.source != ["default"]:
        raise ConfigError(
            f"--source {args.source[0]}: no sources file given (--sources FILE or "
            "PG_METADATA_SOURCES); without one the only source is 'default'"
        )
    overrides: dict[str, Any] = {o: getattr(args, o) for o in CONNECTION_OPTIONS}
    overrides["connection_name"] = args.connection_name
    overrides["connection_qualified_name"] = args.connection_qualified_name
    return [Source.from_env(os.environ, **overrides, **filters)]


def jobs_from_args(args: argparse.Namespace) -> int:
    """Databases extracted at once: --jobs, else PG_METADATA_JOBS, else the usable cores."""
    flag = getattr(args, "jobs", None)
    given = flag or os.environ.get("PG_METADATA_JOBS") or ""
    where = "--jobs" if flag else "PG_METADATA_JOBS"
    if not given:
        return usable_cores()
    try:
        jobs = int(given)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"{where} {given!r} must be a whole number of at least 1")
    return jobs


def extract(args: argparse.Namespace) -> int:
    """Validate everything, then for each source discover its databases and run each one;
    SIGINT/SIGTERM stop the whole extraction (exit 130/143)."""
    with Interrupts() as interrupts:  # first: before any thread starts
        return _extract(args, interrupts)


def _extract(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from pg_metadata.output.retention import keep_runs
    from pg_metadata.output.storage import DEFAULT_TARGET, open_store, parse_target

    sources = sources_from_args(args)
    jobs = jobs_from_args(args)
    target = args.output or DEFAULT_TARGET
    parse_target(target)
    keep_runs()
    for source in sources:  # a missing bucket or read-only folder fails before any server work
        open_store(target, source.name).probe()
    from pg_metadata import telemetry

    names = ",".join(s.name for s in sources)
    with telemetry.phase("pg_metadata.extract", **{"pg_metadata.sources": names}):
        return _run(args, sources, target, interrupts, jobs)


def _instance() -> Any:
    """DAGSTER_HOME's instance (a throwaway one without it). A home without dagster.yaml gets
    Dagster's defaults with its telemetry off: a headless command prints no banner or notice."""
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        from pg_metadata.orchestration.ephemeral import ephemeral_instance

        return ephemeral_instance()
    if os.path.exists(os.path.join(home, "dagster.yaml")):
        return dg.DagsterInstance.get()
    import tempfile

    from dagster._core.instance.ref import InstanceRef  # Dagster's own loader, its settings

    with tempfile.TemporaryDirectory() as config_dir:  # storage stays in DAGSTER_HOME
        with open(os.path.join(config_dir, "dagster.yaml"), "w") as f:
            f.write("telemetry:\n  enabled: false\n")
        ref = InstanceRef.from_dir(home, config_dir=config_dir)
    return dg.DagsterInstance.from_ref(ref)


class _AboveLiveLine(logging.Handler):
    """Step notices (retries), one line each on stderr, above the live line if there is one."""

    pg_metadata_cli = True

    def __init__(self) -> None:
        super().__init__()
        self.live: LiveLine | None = None
        self.setFormatter(logging.Formatter("pg-metadata: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if self.live is not None and self.live.enabled:
            self.live.above(text)
        else:
            print(text, file=sys.stderr, flush=True)


def _progress_to_stderr(quiet: bool, live: LiveLine | None) -> None:
    """Retries and other notices of the steps, one line each on stderr (not with --quiet)."""
    progress = logging.getLogger("pg_metadata.progress")
    if quiet:
        return
    handler = next((h for h in progress.handlers if isinstance(h, _AboveLiveLine)), None)
    if handler is None:
        handler = _AboveLiveLine()
        progress.addHandler(handler)
    handler.live = live
    progress.setLevel(logging.INFO)


def _run(
    args: argparse.Namespace, sources: list[Source], target: str, interrupts: Any, jobs: int
) -> int:
    from pg_metadata.catalog.preflight import check_source_patterns

    for source in sources:  # regexes the server would reject fail before anything is read
        check_source_patterns(source)
    as_json = getattr(args, "json", False)
    quiet = getattr(args, "quiet", False)
    live = None if quiet or as_json else LiveLine()
    _progress_to_stderr(quiet, live)
    # Everything checkable with one statement has been checked; now pay for Dagster.

    from pg_metadata.orchestration.definitions import build_definitions

    defs = build_definitions(sources, target=target)
    run_config = {} if args.verbose else _quiet_run_config()
    instance = _instance()
    progress = Progress(quiet=quiet or as_json, live=live)
    results: list[SourceResult] = []
    try:
        for s in sources:
            if interrupts.stopped:
                break
            results.append(run_source(defs, instance, s, run_config, interrupts, progress, jobs))
    finally:
        if live is not None:
            live.close()
    if as_json:
        print(json.dumps(_summary_json(results, target, interrupts), indent=2))
    for result in results:
        _print_summary(result, _store_uri(target, result.source.name), progress.quiet)
    if interrupts.stopped:
        done = sum(1 for r in results for d in r.databases if d.ok)
        print(
            f"pg-metadata: stopped by {interrupts.name} after {done} complete database(s); "
            "the unfinished ones' latest/ is unchanged",
            file=sys.stderr,
        )
        return interrupts.exit_code
    return 0 if all(r.ok for r in results) else 1


def _summary_json(results: list[SourceResult], target: str, interrupts: Any) -> dict[str, Any]:
    """The run for scripts: per source and database, status, counts, manifest, time, error."""
    return {
        "status": "interrupted"
        if interrupts.stopped
        else ("success" if all(r.ok for r in results) else "failure"),
        "sources": [
            {
                "source": r.source.name,
                "output": _store_uri(target, r.source.name),
                "error": r.error or None,
                "jobs": r.jobs,
                "databases": [
                    {
                        "database": d.database,
                        "status": "success" if d.ok else "failure",
                        "entities": d.entities,
                        "manifest": d.latest or None,
                        "seconds": round(d.seconds, 3),
                        "error": d.error or None,
                    }
                    for d in r.databases
                ],
            }
            for r in results
        ],
    }


class Progress:
    """One line per finished database, as it finishes (none with --quiet); on a terminal, a
    live line for the running one."""

    def __init__(self, quiet: bool = False, live: LiveLine | None = None) -> None:
        self.quiet = quiet
        self.live = live

    def begin(self, source: str, database: str, n: int, total: int) -> None:
        if self.live is not None:
            self.live.start(f"[{n}/{total}] {source}/{database}")

    def running(self, source: str, done: int, total: int, jobs: int) -> None:
        if self.live is not None:
            label = f"[{done}/{total}] {source}: {jobs} databases at a time"
            self.live.start(label, counts=False)

    def pause(self) -> None:
        if self.live is not None:
            self.live.close()  # started again by the next `begin` or `running`

    def database(self, source: str, outcome: DatabaseResult, n: int, total: int, s: float) -> None:
        if self.live is not None:
            self.live.done()
        if self.quiet:
            return
        what = f"{sum(outcome.entities.values())} entities" if outcome.ok else "FAILED"
        print(
            f"pg-metadata: [{n}/{total}] {source}/{outcome.database}: {what} in {s:.1f}s",
            flush=True,
        )


def run_source(
    defs: Any,
    instance: Any,
    source: Source,
    run_config: dict,
    interrupts: Interrupts | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> SourceResult:
    """Discovery, then one extraction run per database, up to `jobs` side by side (within
    the source's `max_connections`); a failing database fails only itself; a stop signal
    ends it after the running ones were interrupted."""
    from pg_metadata import telemetry
    from pg_metadata.orchestration.plan import SourcePlan
    from pg_metadata.orchestration.run_results import failure_line, interrupted
    from pg_metadata.orchestration.translator import PostgresCatalogTranslator

    plan = SourcePlan(source, PostgresCatalogTranslator().get_asset_spec)
    result = SourceResult(source)
    with telemetry.phase("pg_metadata.source", **{"pg_metadata.source": source.name}) as span:
        try:
            discover = _execute(defs, instance, plan.discover_job_name, run_config, plan.job_tags)
        except KeyboardInterrupt:  # outside a step: Dagster did not turn it into a failure
            return result
        if interrupts is not None and not interrupts.stopped and interrupted(discover.all_events):
            interrupts.signum = signal.SIGINT
        if interrupts is not None and interrupts.stopped:
            return result
        if not discover.success:
            result.error = failure_line(discover.all_events)
            span.set_status(telemetry.error_status(result.error))
            return result
        names = list(instance.get_dynamic_partitions(plan.partitions.name))
        if not names:
            result.error = (
                f"no database on {source.describe()} matches the filters (check the include/"
                "exclude filters and the CONNECT privilege)"
            )
            span.set_status(telemetry.error_status(result.error))
            return result
        jobs = min(jobs, len(names), source.pool_slots or jobs)
        span.set_attribute("pg_metadata.jobs", jobs)
        result.jobs = jobs
        current = {"instance": instance}

        def run_one(name: str) -> tuple[DatabaseResult | None, bool]:
            return _run_database(defs, current["instance"], plan, run_config, name)

        def after_fork() -> None:  # in each worker of run_side_by_side
            _progress_to_stderr(progress is None or progress.quiet, None)
            if not instance.is_ephemeral:
                current["instance"] = _instance()

        if jobs > 1:
            if progress is not None:
                progress.pause()  # the live line's thread must not be writing at the fork
            finished = run_side_by_side(names, jobs, run_one, after_fork, interrupts)
            if progress is not None:
                progress.running(source.name, 0, len(names), jobs)
        else:
            finished = _one_by_one(names, run_one, interrupts, progress, source.name)
        try:
            for n, done in enumerate(finished, 1):
                outcome = done.outcome or DatabaseResult(done.name, ok=False, error=done.error)
                outcome.seconds = done.seconds
                result.databases.append(outcome)
                if progress is not None:
                    progress.database(source.name, outcome, n, len(names), done.seconds)
                    if jobs > 1 and n < len(names):
                        progress.running(source.name, n, len(names), jobs)
        except KeyboardInterrupt:  # our handler's, between two databases
            if interrupts is None:
                raise
        finally:
            finished.close()  # the workers: interrupted when stopped, then ended
        order = {name: i for i, name in enumerate(names)}
        result.databases.sort(key=lambda d: order[d.database])  # the summary's order
    return result


def _one_by_one(
    names: list[str],
    run_one: Callable[[str], tuple[DatabaseResult | None, bool]],
    interrupts: Interrupts | None,
    progress: Progress | None,
    source: str,
) -> Generator[Finished, None, None]:
    """Each database in turn, in this process; a stop signal ends it after the current one."""
    for n, name in enumerate(names, 1):
        if progress is not None:
            progress.begin(source, name, n, len(names))
        started = time.monotonic()
        outcome, interrupted = run_one(name)
        if interrupts is not None and interrupted and not interrupts.stopped:
            interrupts.signum = signal.SIGINT  # Dagster took the SIGINT during the run
        if outcome is None or (interrupts is not None and interrupts.stopped):
            break
        yield Finished(name, outcome, time.monotonic() - started)


def _run_database(
    defs: Any, instance: Any, plan: Any, run_config: dict, name: str
) -> tuple[DatabaseResult | None, bool]:
    """One database's extraction run, in its span: its outcome (None when a signal stopped
    it), and whether a signal interrupted it."""
    from pg_metadata import telemetry
    from pg_metadata.orchestration.plan import PARTITION_TAG
    from pg_metadata.orchestration.run_results import interrupted

    attributes = {"pg_metadata.source": plan.name, "db.namespace": name}
    with telemetry.phase("pg_metadata.database", **attributes) as db_span:
        tags = {**plan.job_tags, PARTITION_TAG: name, **plan.database_tags(name)}
        try:
            run = _execute(defs, instance, plan.extract_job_name, run_config, tags, name)
        except KeyboardInterrupt:  # outside a step: Dagster did not turn it into a failure
            run = None
        if run is None or interrupted(run.all_events):
            db_span.set_status(telemetry.error_status("stopped by a signal"))
            return None, True
        outcome = _database_result(name, run)
        if not outcome.ok:
            db_span.set_status(telemetry.error_status(outcome.error))
            telemetry.log(logging.ERROR, f"{plan.name}/{name}: {outcome.error}")
    return outcome, False


def _execute(
    defs: Any,
    instance: Any,
    job_name: str,
    run_config: dict,
    tags: dict[str, str],
    partition: str | None = None,
) -> Any:
    """One in-process run of a job, inside its run span."""
    from pg_metadata.orchestration.tracing import run_span

    run_id = str(uuid.uuid4())  # what Dagster uses; known before the run, for its span
    with run_span(run_id, job_name, tags):
        return defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            partition_key=partition,
            run_config=run_config,
            raise_on_error=False,
            run_id=run_id,
        )


def _store_uri(target: str, source: str) -> str:
    from pg_metadata.output.storage import open_store

    return open_store(target, source, s3_client=lambda: None).uri("")


def _quiet_run_config() -> dict:
    return {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _database_result(name: str, run: Any) -> DatabaseResult:
    from pg_metadata.orchestration.run_results import failure_line, manifest_of

    if not run.success:
        return DatabaseResult(name, ok=False, error=failure_line(run.all_events))
    manifest = manifest_of(run.all_events) or {"entities": {}, "latest": ""}
    return DatabaseResult(name, ok=True, entities=manifest["entities"], latest=manifest["latest"])


def _print_summary(result: SourceResult, target: str, quiet: bool = False) -> None:
    source = result.source
    where = f"{source.name} ({source.describe()})"
    if result.error:
        print(f"pg-metadata: error: source {source.name!r}: {result.error}", file=sys.stderr)
        return
    ok = [r for r in result.databases if r.ok]
    for r in result.databases:
        if not r.ok:
            print(f"  {r.database}: FAILED: {r.error}", file=sys.stderr)
    if quiet:
        return
    print(f"pg-metadata: {len(ok)}/{len(result.databases)} database(s) from {where} -> {target}")
    for r in result.databases:
        if r.ok:
            counts = ", ".join(f"{n} {t}" for t, n in r.entities.items())
            print(f"  {r.database}: {counts}")
            print(f"    manifest: {r.latest}")
