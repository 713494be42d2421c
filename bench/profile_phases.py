"""Where the CLI's time goes: classify py-spy samples of its main thread into phases.

The runner records ``py-spy record --idle --threads -f raw`` of ``pg-metadata extract`` (idle
samples included, so time spent waiting on the server counts). Each sample's stack is assigned
to the first phase whose rule matches, scanning from the innermost frame outwards; any stack
inside an import is "Python imports".

    .venv/bin/python bench/profile_phases.py /tmp/profile.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (phase, file substring, function regex); first match from the innermost frame wins
RULES: list[tuple[str, str, str]] = [
    ("server queries (COPY to spool)", "pg_metadata/extract.py", r"^_copy_to_file$"),
    # the main thread waiting for the helper connection's COPY (columns)
    ("server queries (COPY to spool)", "pg_metadata/extract.py", r"^_HelperCopy\.running$"),
    ("CSV parse (pyarrow.csv)", "pg_metadata/extract.py", r"^batches$"),
    ("CSV parse (pyarrow.csv)", "pyarrow/csv", r".*"),
    ("Parquet write", "pg_metadata/formats.py", r"^write_parquet$"),
    ("Parquet read to Python dicts", "pg_metadata/formats.py", r"^(rows|batches)$"),
    ("entity transform", "pg_metadata/entities.py", r".*"),
    ("entity transform", "pg_metadata/assets.py", r"^(<lambda>|<genexpr>|_entities)$"),
    ("JSON encoding + write", "pg_metadata/formats.py", r"^write_json_lines$"),
    ("storage (publish / upload)", "pg_metadata/storage.py", r".*"),
    ("storage (publish / upload)", "s3transfer/", r".*"),
    ("storage (publish / upload)", "botocore/", r".*"),
    ("asset checks (validate while writing)", "pg_metadata/checks.py", r".*"),
    ("asset checks (validate while writing)", "pg_metadata/validation.py", r".*"),
    ("asset checks: referenced names (read entities)", "pg_metadata/formats.py", r"^JsonLinesFile"),
    ("manifest", "pg_metadata/manifest.py", r".*"),
    ("connect", "pg_metadata/source.py", r"^connect$"),
]
IMPORTS = "Python imports"
NO_FRAMES = "interpreter start / exit (no Python frame)"
OTHER = "Dagster and other overhead"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*):\d+\)$")


def classify(frames: list[str]) -> str:
    """The phase of one stack (outermost frame first)."""
    if not frames:
        return NO_FRAMES
    if any(f.startswith("_find_and_load ") for f in frames):
        return IMPORTS
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        if not m:
            continue
        func, file = m.group("func"), m.group("file")
        for phase, path, pattern in RULES:
            if path in file and re.match(pattern, func):
                return phase
    return OTHER


def phases(raw: str) -> dict[str, float]:
    """Seconds-free shares: sample counts per phase of the main thread, as fractions."""
    counts: Counter[str] = Counter()
    main_tid = None
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        head = frames[0]
        tid = head.split(")")[0]
        if main_tid is None and "MainThread" in head:
            main_tid = tid
        if main_tid is not None and tid != main_tid:
            continue
        counts[classify(frames[1:])] += int(count)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.most_common()}


def main(argv: list[str] | None = None) -> int:
    """Print the phase shares of a py-spy raw profile."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: profile_phases.py PROFILE.txt", file=sys.stderr)
        return 2
    for phase, share in phases(Path(args[0]).read_text()).items():
        print(f"{share * 100:6.1f}%  {phase}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
