"""Agreement check: our raw ``columns`` Parquet against a peer's reflected columns.

Our side is found through the manifest ``<output>/latest/<database>.json`` (its ``raw/columns``
file). The peer side is a JSON Lines dump written by ``bench/approaches.py``: one line per column
``[schema, table, column, type, nullable, default, is_pk, is_fk]``.

Compared per column: the set of (schema, relation) and (schema, relation, column) keys, the
type, nullability, default expression and the primary/foreign key flags. For a sampled dump
(the table-by-table inspector) only the sampled relations are compared, but every one of their
columns must match and every sampled relation must exist on our side.

Normalisation (so that only real disagreements count):

- types: lower case, ``VARCHAR`` -> ``character varying``, ``CHAR`` -> ``character``, no space
  after commas (``NUMERIC(12, 2)`` -> ``numeric(12,2)``), ``[][]`` -> ``[]`` (PostgreSQL keeps no
  array dimensions in the column type; ``format_type`` prints one ``[]``);
- defaults: SQLAlchemy rewrites ``nextval('seq'::regclass)`` to
  ``nextval('"schema".seq'::regclass)`` when the sequence name is unqualified, so the schema
  qualification inside ``nextval('...')`` is dropped on both sides.

    .venv/bin/python bench/agreement.py --output /tmp/out --database bench_small \\
        --reference multi.jsonl --name multi
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

Key = tuple[str, str, str]
FIELDS = ("type", "nullable", "default", "is_pk", "is_fk")
_NEXTVAL = re.compile(r"""nextval\('(?:"(?:[^"]|"")*"|[^'."]+)\.""")
_COMMA = re.compile(r"\s*,\s*")


def normalise_type(text: str | None) -> str | None:
    """A type name in PostgreSQL's format_type spelling, lower case, at most one ``[]``."""
    if text is None:
        return None
    t = text.strip().lower()
    dims = 0
    while t.endswith("[]"):
        t, dims = t[:-2].rstrip(), dims + 1
    t = _COMMA.sub(",", t)
    t = re.sub(r"^varchar\b", "character varying", t)
    t = re.sub(r"^char\b", "character", t)
    if t in ("timestamp", "time"):
        t += " without time zone"
    return t + ("[]" if dims else "")


def normalise_default(text: str | None) -> str | None:
    """A default expression with the schema qualification inside nextval('...') removed."""
    if text is None:
        return None
    return _NEXTVAL.sub("nextval('", text.strip())


def manifest_columns_path(output: Path, database: str) -> Path:
    """Our raw columns Parquet of the latest complete output of `database`."""
    from pg_metadata.output.storage import encode_segment

    name = f"{encode_segment(database)}.json"
    # <output>/<source>/latest/ since sources; <output>/latest/ before
    latest = next(p for p in (output / "default" / "latest" / name, output / "latest" / name)
                  if p.exists() or p.parent.parent == output)  # fmt: skip
    manifest = json.loads(latest.read_text())
    for entry in manifest["files"]:
        if entry.get("path", entry["asset"]) == "raw/columns":
            return Path(entry["uri"])
    raise SystemExit(f"no raw/columns file in the manifest of {database!r} under {output}")


def load_ours(path: Path) -> tuple[dict[Key, dict[str, Any]], dict[tuple[str, str], str]]:
    """Our columns keyed by (schema, relation, column), and each relation's kind."""
    cols = [
        "schema_name",
        "table_name",
        "column_name",
        "table_kind",
        "formatted_type",
        "is_nullable",
        "default_value",
        "is_primary",
        "is_foreign",
    ]
    table = pq.read_table(path, columns=cols)
    data = {c: table.column(c).to_pylist() for c in cols}
    rows: dict[Key, dict[str, Any]] = {}
    kinds: dict[tuple[str, str], str] = {}
    for i in range(table.num_rows):
        key = (data["schema_name"][i], data["table_name"][i], data["column_name"][i])
        kinds[key[:2]] = data["table_kind"][i]
        rows[key] = {
            "type": normalise_type(data["formatted_type"][i]),
            "nullable": bool(data["is_nullable"][i]),
            "default": normalise_default(data["default_value"][i]),
            "is_pk": bool(data["is_primary"][i]),
            "is_fk": bool(data["is_foreign"][i]),
        }
    return rows, kinds


def load_reference(path: Path) -> dict[Key, dict[str, Any]]:
    """A peer's dump keyed like ours."""
    rows: dict[Key, dict[str, Any]] = {}
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            schema, table, column, typ, nullable, default, pk, fk = orjson.loads(line)
            rows[(schema, table, column)] = {
                "type": normalise_type(typ),
                "nullable": bool(nullable),
                "default": normalise_default(default),
                "is_pk": bool(pk),
                "is_fk": bool(fk),
            }
    return rows


@dataclass
class Agreement:
    """Outcome of one comparison."""

    name: str
    sampled: bool
    relations_compared: int = 0
    columns_compared: int = 0
    missing_relations_ours: list[str] = field(default_factory=list)  # in reference, not ours
    missing_relations_reference: list[str] = field(default_factory=list)  # ours, not reference
    missing_relations_reference_by_kind: dict[str, int] = field(default_factory=dict)
    missing_columns_ours: list[str] = field(default_factory=list)
    missing_columns_reference: list[str] = field(default_factory=list)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    mismatches_by_field: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing disagrees."""
        return not (
            self.missing_relations_ours
            or self.missing_relations_reference
            or self.missing_columns_ours
            or self.missing_columns_reference
            or self.mismatches
        )

    def summary(self, limit: int = 10) -> dict[str, Any]:
        """JSON-able summary with at most `limit` examples of each kind."""
        return {
            "name": self.name,
            "ok": self.ok,
            "sampled": self.sampled,
            "relations_compared": self.relations_compared,
            "columns_compared": self.columns_compared,
            "missing_relations_ours": len(self.missing_relations_ours),
            "missing_relations_reference": len(self.missing_relations_reference),
            "missing_relations_reference_by_kind": self.missing_relations_reference_by_kind,
            "missing_columns_ours": len(self.missing_columns_ours),
            "missing_columns_reference": len(self.missing_columns_reference),
            "mismatched_columns": len(self.mismatches),
            "mismatches_by_field": self.mismatches_by_field,
            "examples": {
                "missing_relations_ours": self.missing_relations_ours[:limit],
                "missing_relations_reference": self.missing_relations_reference[:limit],
                "missing_columns_ours": self.missing_columns_ours[:limit],
                "missing_columns_reference": self.missing_columns_reference[:limit],
                "mismatches": self.mismatches[:limit],
            },
        }

    def report(self, limit: int = 10) -> str:
        """Human-readable lines: one summary line, then the first disagreements."""
        head = (
            f"agreement ours vs {self.name}: {'OK' if self.ok else 'MISMATCH'} "
            f"({self.relations_compared} relations, {self.columns_compared} columns compared"
            f"{', sampled' if self.sampled else ''})"
        )
        lines = [head]
        for label, items in (
            ("relation missing in ours", self.missing_relations_ours),
            ("relation missing in reference", self.missing_relations_reference),
            ("column missing in ours", self.missing_columns_ours),
            ("column missing in reference", self.missing_columns_reference),
        ):
            if items:
                lines.append(f"  {len(items)} {label}, e.g. {items[:limit]}")
        if self.missing_relations_reference_by_kind:
            lines.append(
                f"  missing in reference by relkind: {self.missing_relations_reference_by_kind}"
            )
        if self.mismatches:
            lines.append(f"  {len(self.mismatches)} columns differ: {self.mismatches_by_field}")
            lines += [f"    {m}" for m in self.mismatches[:limit]]
        return "\n".join(lines)


def compare(
    ours: dict[Key, dict[str, Any]],
    kinds: dict[tuple[str, str], str],
    reference: dict[Key, dict[str, Any]],
    name: str,
    sampled: bool,
) -> Agreement:
    """Compare our columns with a reference; a sampled reference restricts ours to its tables."""
    result = Agreement(name, sampled)
    ref_relations = {k[:2] for k in reference}
    our_relations = set(kinds)
    if sampled:
        our_keys = {k for k in ours if k[:2] in ref_relations}
        compared_relations = ref_relations
    else:
        our_keys = set(ours)
        compared_relations = ref_relations | our_relations
        missing = sorted(our_relations - ref_relations)
        result.missing_relations_reference = [".".join(r) for r in missing]
        result.missing_relations_reference_by_kind = dict(Counter(kinds[r] for r in missing))
    result.missing_relations_ours = [".".join(r) for r in sorted(ref_relations - our_relations)]
    result.relations_compared = len(compared_relations)
    ref_keys = set(reference)
    result.missing_columns_ours = [
        ".".join(k) for k in sorted(ref_keys - our_keys) if k[:2] in our_relations
    ]
    result.missing_columns_reference = [
        ".".join(k) for k in sorted(our_keys - ref_keys) if k[:2] in ref_relations
    ]
    by_field: Counter[str] = Counter()
    for key in sorted(ref_keys & our_keys):
        a, b = ours[key], reference[key]
        diff = {f: (a[f], b[f]) for f in FIELDS if a[f] != b[f]}
        if diff:
            by_field.update(diff.keys())
            result.mismatches.append({"column": ".".join(key), "ours_vs_reference": diff})
    result.columns_compared = len(ref_keys & our_keys)
    result.mismatches_by_field = dict(by_field)
    return result


def check(output: Path, database: str, reference: Path, name: str, sampled: bool) -> Agreement:
    """Load both sides and compare them."""
    ours, kinds = load_ours(manifest_columns_path(output, database))
    return compare(ours, kinds, load_reference(reference), name, sampled)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit 1 on any disagreement."""
    parser = argparse.ArgumentParser(description="Compare our columns with a peer's dump.")
    parser.add_argument("--output", required=True, type=Path, help="our local output folder")
    parser.add_argument("--database", required=True)
    parser.add_argument("--reference", required=True, type=Path, help="approaches.py --dump")
    parser.add_argument("--name", default="reference")
    parser.add_argument("--sampled", action="store_true", help="the dump covers a sample")
    args = parser.parse_args(argv)
    result = check(args.output, args.database, args.reference, args.name, args.sampled)
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
