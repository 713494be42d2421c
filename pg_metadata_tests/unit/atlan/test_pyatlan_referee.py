"""pyatlan as referee: every golden entity parses as its pyatlan asset type, and our
qualifiedNames are the ones pyatlan's own creators build."""

from __future__ import annotations

import json

import pytest

from .golden import GOLDEN_DIR

pyatlan = pytest.importorskip("pyatlan")  # in the dev extra; the check is skipped without it
from pyatlan.model.assets import (  # noqa: E402
    Asset,
    Column,
    ColumnProcess,
    Procedure,
    Process,
    Table,
    TablePartition,
    View,
)

C = "default/postgres/1717000000"
S = f"{C}/shop/sales"


def golden(kind: str) -> list[dict]:
    return json.loads((GOLDEN_DIR / f"{kind}.json").read_text("utf-8"))


@pytest.mark.parametrize(
    "kind",
    [
        "database",
        "schema",
        "table",
        "table_partition",
        "view",
        "materialised_view",
        "column",
        "procedure",
        "process",
        "column_process",
    ],
)
def test_every_golden_entity_parses_as_its_pyatlan_type(kind: str) -> None:
    for entity in golden(kind):
        asset = Asset._convert_to_real_type_(entity)
        assert type(asset).__name__ == entity["typeName"]
        assert asset.qualified_name == entity["attributes"]["qualifiedName"]
        assert asset.name == entity["attributes"]["name"]


def test_qualified_names_are_pyatlans() -> None:
    ours = {e["attributes"]["name"]: e for e in golden("table")}
    assert (
        Table.creator(name="orders", schema_qualified_name=S).qualified_name
        == (ours["orders"]["attributes"]["qualifiedName"])
    )
    part = golden("table_partition")[0]["attributes"]
    assert (
        TablePartition.creator(
            name=part["name"], table_qualified_name=part["tableQualifiedName"]
        ).qualified_name
        == part["qualifiedName"]
    )
    view = golden("view")[0]["attributes"]
    assert (
        View.creator(name=view["name"], schema_qualified_name=S).qualified_name
        == (view["qualifiedName"])
    )
    column = golden("column")[0]["attributes"]
    assert (
        Column.creator(
            name=column["name"],
            parent_qualified_name=column["tableQualifiedName"],
            parent_type=Table,
            order=column["order"],
        ).qualified_name
        == column["qualifiedName"]
    )
    aggregate = next(e for e in golden("procedure") if e["attributes"]["name"] == "sumsq")
    assert (
        Procedure.creator(
            name="sumsq", definition="aggregate_dummy", schema_qualified_name=S
        ).qualified_name
        == aggregate["attributes"]["qualifiedName"]
    )


def test_process_names_are_pyatlans_hash() -> None:
    for entity in golden("process"):
        a = entity["attributes"]
        inputs = [
            Table.ref_by_qualified_name(i["uniqueAttributes"]["qualifiedName"]) for i in a["inputs"]
        ]
        outputs = [
            View.ref_by_qualified_name(o["uniqueAttributes"]["qualifiedName"]) for o in a["outputs"]
        ]
        made = Process.creator(
            name=a["name"], connection_qualified_name=C, inputs=inputs, outputs=outputs
        )
        assert made.qualified_name == a["qualifiedName"]
    for entity in golden("column_process"):
        a = entity["attributes"]
        parent = Process.ref_by_qualified_name(a["process"]["uniqueAttributes"]["qualifiedName"])
        made = ColumnProcess.creator(
            name=a["name"],
            connection_qualified_name=C,
            inputs=[
                Column.ref_by_qualified_name(i["uniqueAttributes"]["qualifiedName"])
                for i in a["inputs"]
            ],
            outputs=[
                Column.ref_by_qualified_name(o["uniqueAttributes"]["qualifiedName"])
                for o in a["outputs"]
            ],
            parent=parent,
        )
        assert made.qualified_name == a["qualifiedName"]
