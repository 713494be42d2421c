"""Integrity checks over emitted entities: pure functions behind the Dagster asset checks."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pg_metadata import entities as E

REFERENCE_KEYS = (
    "database",
    "atlanSchema",
    "parentTable",
    "parentTablePartition",
    "table",
    "view",
    "materialisedView",
    "tablePartition",
)
COLUMN_PARENTS = {
    "table": "tableQualifiedName",
    "tablePartition": "tableQualifiedName",
    "view": "viewQualifiedName",
    "materialisedView": "viewQualifiedName",
}
SAMPLE = 10


@dataclass
class Finding:
    """Outcome of one check: how many problems, and a few examples."""

    problems: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str) -> None:
        self.problems += 1
        if len(self.examples) < SAMPLE:
            self.examples.append(example)

    @property
    def passed(self) -> bool:
        return self.problems == 0


def qualified_name(entity: Mapping[str, Any]) -> str:
    return entity["attributes"]["qualifiedName"]


def repeated(values: array) -> set[int]:
    """Values that occur more than once: sort in Arrow (C++), compare neighbours."""
    if len(values) < 2:
        return set()
    column = pa.array(values, type=pa.int64())
    ordered = column.take(pc.sort_indices(column))
    del column
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    out = set(ordered.slice(1).filter(same).to_pylist())
    del ordered, same
    pa.default_memory_pool().release_unused()
    return out


def duplicate_qualified_names(
    entities: Callable[[], Iterable[Mapping[str, Any]]],
) -> Finding:
    """QualifiedNames emitted more than once (see `scan`)."""
    return scan(entities).duplicates


def unresolved_references(
    entities: Iterable[Mapping[str, Any]], known: Mapping[str, set[str]]
) -> Finding:
    """References whose target (typeName, qualifiedName) is not among the emitted entities."""
    finding = Finding()
    for entity in entities:
        _check_references(entity, known, finding)
    return finding


def _check_references(
    entity: Mapping[str, Any], known: Mapping[str, set[str]], finding: Finding
) -> None:
    attributes = entity["attributes"]
    for key in REFERENCE_KEYS:
        target = attributes.get(key)
        if target is None:
            continue
        type_name = target.get("typeName")
        target_qn = target.get("uniqueAttributes", {}).get("qualifiedName")
        if target_qn not in known.get(type_name, ()):
            finding.add(f"{qualified_name(entity)} -{key}-> {type_name} {target_qn}")


def column_parent_problems(columns: Iterable[Mapping[str, Any]]) -> Finding:
    """Every column must have exactly one parent reference, consistent with its names."""
    finding = Finding()
    for column in columns:
        _check_parent(column, finding)
    return finding


def _check_column(
    column: Mapping[str, Any],
    known: Mapping[str, set[str]],
    references: Finding,
    parents: Finding,
) -> None:
    """Parent and references of a column in one look: its only reference is its parent."""
    key = _check_parent(column, parents)
    if key is None:
        _check_references(column, known, references)
        return
    target = column["attributes"][key]
    parent_qn = target["uniqueAttributes"]["qualifiedName"]
    if parent_qn not in known.get(target["typeName"], ()):
        references.add(f"{qualified_name(column)} -{key}-> {target['typeName']} {parent_qn}")


def _check_parent(column: Mapping[str, Any], finding: Finding) -> str | None:
    """Record parent problems; return the parent reference key when there is exactly one."""
    attributes = column["attributes"]
    parents = [k for k in COLUMN_PARENTS if k in attributes]
    if len(parents) != 1:
        finding.add(f"{qualified_name(column)} has parents {parents or 'none'}")
        return None
    key = parents[0]
    parent_qn = attributes[key]["uniqueAttributes"]["qualifiedName"]
    if attributes.get(COLUMN_PARENTS[key]) != parent_qn:
        finding.add(f"{qualified_name(column)}: {key} disagrees with {COLUMN_PARENTS[key]}")
    elif not qualified_name(column).startswith(parent_qn + "/"):
        finding.add(f"{qualified_name(column)} is not under its parent {parent_qn}")
    return key


def expected_count(type_name: str, raw_rows: Iterable[Mapping[str, Any]]) -> int:
    """How many entities of a type the raw rows should produce."""
    if type_name in E.RELATION_TYPES:
        return sum(1 for row in raw_rows if E.relation_type(row) == type_name)
    return sum(1 for _ in raw_rows)


def qualified_names(entities: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """QualifiedNames, for building the `known` sets."""
    for entity in entities:
        yield qualified_name(entity)


@dataclass
class Scan:
    """Everything the checks need from one pass over an entity file."""

    count: int = 0
    duplicates: Finding = field(default_factory=Finding)
    references: Finding = field(default_factory=Finding)
    parents: Finding = field(default_factory=Finding)


def scan(
    entities: Callable[[], Iterable[Mapping[str, Any]]],
    known: Mapping[str, set[str]] | None = None,
    columns: bool = False,
) -> Scan:
    """One pass computing counts, reference and parent problems and duplicate candidates;
    a second pass only when some qualifiedName hash repeated."""
    result = Scan()
    hashes = array("q")  # 8 bytes per entity, not a Python set of ints
    for entity in entities():
        result.count += 1
        hashes.append(hash(entity["attributes"]["qualifiedName"]))
        if columns:
            _check_column(entity, known or {}, result.references, result.parents)
        elif known is not None:
            _check_references(entity, known, result.references)
    suspects = repeated(hashes)
    del hashes
    if suspects:
        counts = Counter(qn for qn in qualified_names(entities()) if hash(qn) in suspects)
        for qn, n in sorted(counts.items()):
            for _ in range(n - 1):
                result.duplicates.add(qn)
    return result
