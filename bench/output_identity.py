"""Whole-output agreement: the entity files of two extractions of one catalog, byte for byte.

Reads `<output>/<source>/latest/<database>.json` of two output folders (say, one written by
the code before a change and one by the code after it) and compares every `transformed/...`
file line by line, after replacing what differs between any two runs by design: the run id
(`lastSyncRun`) and the run's time (`lastSyncRunAt`). Prints one JSON object; exits 1 when a
file differs (with its first differing line number) or is missing on one side.

    .venv/bin/python bench/output_identity.py --before OUT_A --after OUT_B --database big
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

RUN_FIELDS = re.compile(rb'"lastSyncRun":"[^"]*","lastSyncRunAt":\d+')
PLACEHOLDER = b'"lastSyncRun":"<run>","lastSyncRunAt":0'


def entity_files(output: Path, source: str, database: str) -> dict[str, Path]:
    """Entity file by path (`transformed/column`) from a database's latest manifest."""
    manifest = json.loads((output / source / "latest" / f"{database}.json").read_text())
    return {
        f["path"]: Path(f["uri"]) for f in manifest["files"] if f["path"].startswith("transformed/")
    }


def normalised_digest(path: Path) -> tuple[str, int, list[bytes]]:
    """sha256 of the file with the run fields replaced, its line count, and its lines'
    digests (to find the first difference)."""
    whole = hashlib.sha256()
    lines: list[bytes] = []
    with open(path, "rb") as f:
        for line in f:
            line = RUN_FIELDS.sub(PLACEHOLDER, line)
            whole.update(line)
            lines.append(hashlib.blake2b(line, digest_size=8).digest())
    return whole.hexdigest(), len(lines), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--source", default="default")
    args = parser.parse_args()
    before = entity_files(args.before, args.source, args.database)
    after = entity_files(args.after, args.source, args.database)
    report: dict[str, object] = {"files": {}, "only_before": [], "only_after": []}
    report["only_before"] = sorted(set(before) - set(after))
    report["only_after"] = sorted(set(after) - set(before))
    same = not report["only_before"] and not report["only_after"]
    for name in sorted(set(before) & set(after)):
        a, b = normalised_digest(before[name]), normalised_digest(after[name])
        entry: dict[str, object] = {"lines": [a[1], b[1]], "identical": a[0] == b[0]}
        if a[0] != b[0]:
            entry["first_different_line"] = next(
                (i + 1 for i, (x, y) in enumerate(zip(a[2], b[2], strict=False)) if x != y),
                min(a[1], b[1]) + 1,
            )
            same = False
        report["files"][name] = entry  # type: ignore[index]
    report["identical"] = same
    print(json.dumps(report, indent=2))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
