"""Names and ColumnProcess entities of view lineage, apart from the parsing (no sqlglot here):
the entity step builds ColumnProcesses from edges a forked parser sent back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from pg_metadata.atlan.entities import COLUMN, COLUMN_PROCESS, PROCESS, AtlanContext, entity, ref


def process_qualified_name(name: str, connection_qualified_name: str) -> str:
    """pyatlan's generate_qualified_name for references without GUIDs."""
    digest = hashlib.md5((name + connection_qualified_name).encode()).hexdigest()
    return f"{connection_qualified_name}/{digest}"


# A ColumnProcess before it is an entity: (view column qn, input column qns, process qn). Tens
# of thousands are held between the parse and the write; as dicts they cost ~2 KB each.
ColumnEdge = tuple[str, tuple[str, ...], str]


def column_process(edge: ColumnEdge, ctx: AtlanContext) -> dict[str, Any]:
    """The ColumnProcess entity of one view column."""
    column_qn, inputs, process_qn = edge
    attrs = {
        **ctx.common(column_qn, process_qualified_name(column_qn, ctx.connection_qualified_name)),
        "inputs": [ref(COLUMN, s) for s in inputs],
        "outputs": [ref(COLUMN, column_qn)],
        "process": ref(PROCESS, process_qn),
        **ctx.sync(),
    }
    return entity(COLUMN_PROCESS, attrs, {"source": "pg_depend + pg_get_viewdef"})


def column_processes(edges: Iterable[ColumnEdge], ctx: AtlanContext) -> Iterator[dict[str, Any]]:
    """ColumnProcess entities, built as they are written."""
    for edge in edges:
        yield column_process(edge, ctx)
