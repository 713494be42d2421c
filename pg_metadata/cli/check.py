"""`pg-metadata check`: the preflight of each selected source, printed one check per line."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pg_metadata.catalog.preflight import Check, Report, run_preflight
from pg_metadata.cli.extract import sources_from_args
from pg_metadata.output.storage import DEFAULT_TARGET, open_store, parse_target

INSTANCE = "dagsterInstance"


def instance_check() -> Check:
    """Whether the Dagster instance (DAGSTER_HOME) answers; without one, runs are not kept."""
    if not os.environ.get("DAGSTER_HOME"):
        return Check(
            INSTANCE,
            True,
            "DAGSTER_HOME is not set: the CLI runs on a throwaway instance (no run history, "
            "no deletions across runs)",
        )
    try:
        import dagster as dg

        instance = dg.DagsterInstance.get()
        runs = instance.get_runs_count()
    except Exception as exc:  # the instance's own error, on one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Check(
            INSTANCE,
            False,
            f"the Dagster instance of {os.environ['DAGSTER_HOME']} "
            f"is not usable: {reason} (check DAGSTER_HOME and its dagster.yaml)",
        )
    return Check(INSTANCE, True, f"Dagster instance {os.environ['DAGSTER_HOME']}: {runs} run(s)")


def check(args: argparse.Namespace) -> int:
    """Run the preflight of every selected source; 0 when all are ready."""
    sources = sources_from_args(args)
    target = args.output or DEFAULT_TARGET
    parse_target(target)
    reports: dict[str, Report] = {}
    for source in sources:
        store = open_store(target, source.name)
        reports[source.name] = run_preflight(source, output=store.probe, extra=[instance_check])
    if args.json:
        print(json.dumps({name: r.as_dict() for name, r in reports.items()}, indent=2))
    else:
        for name, report in reports.items():
            print(f"pg-metadata: source {name!r}: {'ready' if report.ready else 'NOT READY'}")
            for c in report.checks:
                print(f"  [{'ok' if c.passed else 'FAILED'}] {c.name}: {c.message}")
    ready = all(r.ready for r in reports.values())
    if not ready and not args.json:
        print("pg-metadata: error: preflight failed (see the FAILED checks)", file=sys.stderr)
    return 0 if ready else 1
