"""The integrity checks' logic on clean and corrupted entities."""

from __future__ import annotations

import copy

from pg_metadata.atlan import validation as V
from pg_metadata.atlan.entities import COLUMN, TABLE, ref


def column(qn: str, parent: str, key: str = "table", parent_type: str = TABLE) -> dict:
    name_key = "tableQualifiedName" if key in ("table", "tablePartition") else "viewQualifiedName"
    return {
        "typeName": COLUMN,
        "attributes": {"qualifiedName": qn, name_key: parent, key: ref(parent_type, parent)},
    }


CLEAN = [column("c/db/s/t/a", "c/db/s/t"), column("c/db/s/t/b", "c/db/s/t")]
KNOWN = {TABLE: {"c/db/s/t"}}


def test_clean_columns_pass_every_check():
    assert V.scan(lambda: iter(CLEAN)).duplicates.passed
    assert V.scan(lambda: CLEAN, KNOWN).references.passed
    assert V.scan(lambda: CLEAN, columns=True).parents.passed


def test_duplicates_are_found_and_counted():
    finding = V.scan(lambda: iter([*CLEAN, CLEAN[0], CLEAN[0]])).duplicates
    assert finding.problems == 2
    assert [e.split(" is the name of ")[0] for e in finding.examples] == ["c/db/s/t/a"] * 2


def test_dangling_reference_is_found():
    finding = V.scan(lambda: [*CLEAN, column("c/db/s/x/a", "c/db/s/x")], KNOWN).references
    assert finding.problems == 1 and "c/db/s/x" in finding.examples[0]


def test_reference_to_the_wrong_type_is_found():
    wrong = column("c/db/s/t/c", "c/db/s/t", key="view", parent_type="View")
    assert V.scan(lambda: [wrong], KNOWN).references.problems == 1


def test_columns_without_or_with_two_parents_are_found():
    orphan = copy.deepcopy(CLEAN[0])
    del orphan["attributes"]["table"]
    twice = copy.deepcopy(CLEAN[1])
    twice["attributes"]["view"] = ref("View", "c/db/s/v")
    finding = V.scan(lambda: [orphan, twice], columns=True).parents
    assert finding.problems == 2


def test_parent_disagreeing_with_names_is_found():
    odd = column("c/db/s/t/a", "c/db/s/t")
    odd["attributes"]["tableQualifiedName"] = "c/db/s/other"
    elsewhere = column("c/db/s/u/a", "c/db/s/t")
    assert V.scan(lambda: [odd, elsewhere], columns=True).parents.problems == 2


def test_expected_count_by_relation_type():
    rows = [
        {"is_partition": False, "table_kind": "r"},
        {"is_partition": True, "table_kind": "r"},
        {"is_partition": False, "table_kind": "v"},
        {"is_partition": False, "table_kind": "f"},
    ]
    assert V.expected_count(TABLE, rows) == 2
    assert V.expected_count("TablePartition", rows) == 1
    assert V.expected_count(COLUMN, rows) == 4


def partition(qn: str, parent: str, parent_type: str = "TablePartition") -> dict:
    key = "parentTablePartition" if parent_type == "TablePartition" else "parentTable"
    return {
        "typeName": "TablePartition",
        "attributes": {"qualifiedName": qn, key: ref(parent_type, parent)},
    }


def test_scanner_resolves_references_to_its_own_type_at_the_end():
    # a sub-partition can stream past before the partition it belongs to
    stream = [
        partition("c/db/s/p1_a", "c/db/s/p1"),
        partition("c/db/s/p1", "c/db/s/t", parent_type=TABLE),
        partition("c/db/s/p2_a", "c/db/s/p2"),  # p2 is never emitted
    ]
    scanner = V.Scanner("TablePartition", {TABLE: {"c/db/s/t"}}, self_referencing=True)
    assert list(scanner.watch(stream)) == stream  # passed through unchanged, in order
    found = scanner.finish(lambda: stream)
    assert found.count == 3 and found.duplicates.passed
    assert found.references.problems == 1 and "c/db/s/p2" in found.references.examples[0]


def test_scanner_names_duplicates_by_regenerating_the_stream():
    stream = [*CLEAN, CLEAN[1]]
    scanner = V.Scanner(COLUMN, KNOWN, columns=True)
    for _ in scanner.watch(iter(stream)):
        pass
    found = scanner.finish(lambda: iter(stream))
    assert [e.split(" is the name of ")[0] for e in found.duplicates.examples] == ["c/db/s/t/b"]
    assert found.references.passed and found.parents.passed and found.count == 3


def _sharing_parent(*names: str, parent: str = "c/db/s/t") -> list[dict]:
    """Columns of one relation sharing one parent reference object, as the builder makes them."""
    shared = ref(TABLE, parent)
    out = []
    for name in names:
        entity = column(f"{parent}/{name}", parent)
        entity["attributes"]["table"] = shared
        out.append(entity)
    return out


def test_columns_sharing_a_parent_reference_are_still_checked_one_by_one():
    columns = _sharing_parent("a", "b", "c", "d", "e")
    columns[1]["attributes"]["qualifiedName"] = "c/db/s/other/b"  # not under its parent
    columns[2]["attributes"]["tableQualifiedName"] = "c/db/s/u"  # disagrees with `table`
    columns[3]["attributes"]["view"] = ref("View", "c/db/s/t")  # a second parent
    scan = V.scan(lambda: columns, KNOWN, columns=True)
    assert scan.parents.problems == 3
    assert scan.references.examples == ["c/db/s/t/d -view-> View c/db/s/t"]  # no such view
    assert scan.count == 5


def test_every_column_of_an_unknown_parent_is_counted():
    columns = _sharing_parent("a", "b", "c", parent="c/db/s/gone")
    scan = V.scan(lambda: columns, KNOWN, columns=True)
    assert scan.references.problems == 3
    assert scan.parents.passed


def test_parts_scanned_apart_add_up_to_one_scan():
    columns = [*_sharing_parent("a", "b"), *_sharing_parent("x", parent="c/db/s/gone")]
    columns.append(copy.deepcopy(columns[0]))  # a duplicate in another part
    whole = V.scan(lambda: columns, KNOWN, columns=True)
    scanner = V.Scanner(COLUMN, KNOWN, columns=True)
    for part in (columns[:2], columns[2:]):
        piece = V.Scanner(COLUMN, KNOWN, columns=True)
        for _ in piece.watch(part):
            pass
        scanner.absorb(piece.part())
    combined = scanner.finish(lambda: columns)
    assert combined == whole
    assert combined.duplicates.problems == 1 and combined.references.problems == 1
