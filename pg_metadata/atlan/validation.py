"""Integrity checks over emitted entities: pure functions behind the Dagster asset checks."""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pg_metadata.atlan import entities as E

REFERENCE_KEYS = (
    "database",
    "atlanSchema",
    "parentTable",
    "parentTablePartition",
    "table",
    "view",
    "materialisedView",
    "tablePartition",
    "process",
)
LIST_REFERENCE_KEYS = ("inputs", "outputs")
COLUMN_PARENTS = {
    "table": "tableQualifiedName",
    "tablePartition": "tableQualifiedName",
    "view": "viewQualifiedName",
    "materialisedView": "viewQualifiedName",
}
SAMPLE = 10
_NONE = object()  # matches no attribute value


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


_NAME_PATH = ("databaseName", "schemaName", "tableName", "viewName", "name")


def describe(entity: Mapping[str, Any]) -> str:
    """The object behind an entity by its verbatim names, e.g. `Table "shop"."a/b"."c"`."""
    attributes = entity["attributes"]
    names = [attributes[k] for k in _NAME_PATH if attributes.get(k) is not None]
    return f"{entity.get('typeName', '?')} " + ".".join(
        json.dumps(n, ensure_ascii=False) for n in names
    )


def repeated(values: array) -> set[int]:
    """Values that occur more than once; `values` is sorted in place (numpy on its buffer: no
    copy of the 8 bytes an entity, where an Arrow sort took 16 more), neighbours compared."""
    if len(values) < 2:
        return set()
    ordered = np.frombuffer(values, dtype=np.int64)  # writable: a view of the array's buffer
    ordered.sort()
    same = ordered[1:] == ordered[:-1]
    return set(ordered[1:][same].tolist())


def _check_references(
    entity: Mapping[str, Any],
    known: Mapping[str, set[str]],
    finding: Finding,
    deferred: tuple[str, list[tuple[str, str, str]]] | None = None,
) -> None:
    """Record references whose target is unknown; with `deferred` (a typeName and a list),
    references to that type that are not known yet are kept for a later look instead."""
    attributes = entity["attributes"]
    for key, target in _references(attributes, REFERENCE_KEYS, LIST_REFERENCE_KEYS):
        type_name = target.get("typeName")
        target_qn = target.get("uniqueAttributes", {}).get("qualifiedName")
        if target_qn in known.get(type_name, ()):
            continue
        if deferred is not None and type_name == deferred[0]:
            deferred[1].append((f"{qualified_name(entity)} -{key}->", type_name, target_qn))
        else:
            finding.add(f"{qualified_name(entity)} -{key}-> {type_name} {target_qn}")


def _references(
    attributes: Mapping[str, Any], single: Iterable[str], lists: Iterable[str]
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in single:
        target = attributes.get(key)
        if target is not None:
            yield key, target
    for key in lists:
        for target in attributes.get(key) or ():
            yield key, target


def _check_column(
    column: Mapping[str, Any],
    known: Mapping[str, set[str]],
    references: Finding,
    parents: Finding,
) -> None:
    """Parent and references of a column in one look (it runs a million times on big
    catalogs): exactly one parent, matching the names, and known."""
    attributes = column["attributes"]
    key, count = "", 0
    for k in COLUMN_PARENTS:
        if k in attributes:
            key, count = k, count + 1
    qn = attributes["qualifiedName"]
    if count != 1:
        found = [k for k in COLUMN_PARENTS if k in attributes]
        parents.add(f"{qn} has parents {found or 'none'}")
        _check_references(column, known, references)
        return
    target = attributes[key]
    parent_qn = target["uniqueAttributes"]["qualifiedName"]
    if attributes.get(COLUMN_PARENTS[key]) != parent_qn:
        parents.add(f"{qn}: {key} disagrees with {COLUMN_PARENTS[key]}")
    elif not (qn.startswith(parent_qn) and qn[len(parent_qn) : len(parent_qn) + 1] == "/"):
        parents.add(f"{qn} is not under its parent {parent_qn}")
    if parent_qn not in known.get(target["typeName"], ()):
        references.add(f"{qn} -{key}-> {target['typeName']} {parent_qn}")


def expected_count(type_name: str, raw_rows: Iterable[Mapping[str, Any]]) -> int:
    """How many entities of a type the raw rows should produce."""
    if type_name in E.RELATION_TYPES:
        return sum(1 for row in raw_rows if E.relation_type(row) == type_name)
    return sum(1 for _ in raw_rows)


@dataclass
class Scan:
    """Everything the checks need from one pass over an entity file."""

    count: int = 0
    duplicates: Finding = field(default_factory=Finding)
    references: Finding = field(default_factory=Finding)
    parents: Finding = field(default_factory=Finding)


@dataclass
class ScanPart:
    """What a scanner saw of one slice of the entities, to be absorbed by the whole's scanner
    (slices scanned in other processes)."""

    count: int
    hashes: bytes
    references: Finding
    parents: Finding
    linked_seen: set[str]


class Scanner:
    """The checks of one entity type, computed entity by entity as the entities stream past
    on their way to the output file, so nothing is read back.

    `known` holds the qualifiedNames of the other types this type references; when the type
    references itself (partitions of partitions), its own names are collected as they pass and
    references to names not seen yet are resolved at the end. Memory: 8 bytes per entity.
    """

    def __init__(
        self,
        type_name: str,
        known: Mapping[str, set[str]] | None = None,
        columns: bool = False,
        self_referencing: bool = False,
        linked_columns: set[str] | None = None,
    ) -> None:
        self.result = Scan()
        # columns the foreign-key links point at: each must pass by as a column of this output
        self._linked = linked_columns
        self._linked_seen: set[str] = set()
        self._known = dict(known or {})
        self._check_refs = known is not None or self_referencing
        self._columns = columns
        self._hashes = array("q")  # 8 bytes per entity, not a Python set of ints
        self._own: set[str] | None = None
        self._deferred: tuple[str, list[tuple[str, str, str]]] | None = None
        if self_referencing:
            self._own = self._known.setdefault(type_name, set())
            self._deferred = (type_name, [])

    def watch(self, entities: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """Pass the entities through, checking each one."""
        if self._columns and self._own is None:
            yield from self._watch_columns(entities)
            return
        result, hashes, own = self.result, self._hashes, self._own
        linked, linked_seen = self._linked, self._linked_seen
        for entity in entities:
            result.count += 1
            qn = entity["attributes"]["qualifiedName"]
            hashes.append(hash(qn))
            if own is not None:
                own.add(qn)
            if linked and qn in linked:
                linked_seen.add(qn)
            if self._columns:
                _check_column(entity, self._known, result.references, result.parents)
            elif self._check_refs:
                _check_references(entity, self._known, result.references, self._deferred)
            yield entity

    def _watch_columns(self, entities: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """`watch` for columns (a million on big catalogs): a column whose parent reference is
        the very object the previous column passed with (columns of one relation share it)
        needs only its own names checked; any other goes through `_check_column`."""
        result, hashes, known = self.result, self._hashes, self._known
        linked, linked_seen = self._linked, self._linked_seen
        references, parents = result.references, result.parents
        table, partition, view, mv = COLUMN_PARENTS
        good_key, good_target, good_name_key, good_qn, good_prefix = "", _NONE, "", "", ""
        for entity in entities:
            result.count += 1
            attributes = entity["attributes"]
            qn = attributes["qualifiedName"]
            hashes.append(hash(qn))
            if linked and qn in linked:
                linked_seen.add(qn)
            if (
                attributes.get(good_key) is good_target
                and (table in attributes)
                + (partition in attributes)
                + (view in attributes)
                + (mv in attributes)
                == 1
                and attributes.get(good_name_key) == good_qn
                and qn.startswith(good_prefix)
            ):
                yield entity
                continue
            problems = references.problems + parents.problems
            _check_column(entity, known, references, parents)
            if references.problems + parents.problems == problems:
                for key in COLUMN_PARENTS:
                    if key in attributes:
                        good_key, good_target = key, attributes[key]
                good_name_key = COLUMN_PARENTS[good_key]
                good_qn = attributes[good_name_key]
                good_prefix = good_qn + "/"
            yield entity

    def part(self) -> ScanPart:
        """What this scanner saw, for another scanner's `absorb` (no self-references)."""
        assert self._deferred is None, "a self-referencing type is scanned in one piece"
        r = self.result
        return ScanPart(r.count, self._hashes.tobytes(), r.references, r.parents, self._linked_seen)

    def absorb(self, part: ScanPart) -> None:
        """Take in a slice scanned elsewhere, as if its entities had passed through `watch`."""
        result = self.result
        result.count += part.count
        self._hashes.frombytes(part.hashes)
        self._linked_seen |= part.linked_seen
        for mine, theirs in ((result.references, part.references), (result.parents, part.parents)):
            mine.problems += theirs.problems
            mine.examples.extend(theirs.examples[: SAMPLE - len(mine.examples)])

    def finish(self, entities: Callable[[], Iterable[Mapping[str, Any]]]) -> Scan:
        """Resolve what had to wait for the end; `entities` regenerates the stream, read
        again only to name duplicates when some qualifiedName hash repeated."""
        result = self.result
        for qn in sorted((self._linked or set()) - self._linked_seen):
            result.references.add(f"a foreign key links to {qn}, which is not in the output")
        if self._deferred is not None:
            for source, type_name, target_qn in self._deferred[1]:
                if target_qn not in self._known[type_name]:
                    result.references.add(f"{source} {type_name} {target_qn}")
        suspects = repeated(self._hashes)
        self._hashes = array("q")
        if suspects:
            owners: dict[str, list[str]] = defaultdict(list)
            for entity in entities():
                qn = qualified_name(entity)
                if hash(qn) in suspects:
                    owners[qn].append(describe(entity))
            for qn, objects in sorted(owners.items()):
                for _ in range(len(objects) - 1):
                    result.duplicates.add(f"{qn} is the name of {' and '.join(objects)}")
        return result


def scan(
    entities: Callable[[], Iterable[Mapping[str, Any]]],
    known: Mapping[str, set[str]] | None = None,
    columns: bool = False,
) -> Scan:
    """All checks over entities that can be iterated again (a file, a list)."""
    scanner = Scanner("", known, columns)
    for _ in scanner.watch(entities()):
        pass
    return scanner.finish(entities)
