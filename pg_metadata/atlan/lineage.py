"""View lineage as Atlan entities: one Process per view or materialized view, one ColumnProcess
per view column.

Which relations and columns a view reads is exact: PostgreSQL recorded it in pg_depend when the
view was created (the `lineage` dataset). Which of those columns feeds which view column is read
from the view's definition, `pg_get_viewdef`, with sqlglot, because the stored query tree
(pg_rewrite.ev_action) is an internal format with no parser outside the server, while
pg_get_viewdef is the server's own rendering of that tree: every column qualified by its range
alias, `*` expanded, and an explicit column list (`CREATE VIEW v(a, b)`) rendered as `AS a`,
`AS b` on the select list, so output columns match the view's columns by position. Every source
column found must be among the columns pg_depend lists for the view; anything else is dropped
and counted, never guessed.

qualifiedNames are pyatlan's (Process.creator / ColumnProcess.creator with references that have
no GUID): `<connection qn>/<md5(name + connection qn)>`, named after the view (column), so they
are the same on every run and an edited view updates its Process in place.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import sqlglot
from sqlglot import exp

from pg_metadata.atlan.entities import (
    PROCESS,
    AtlanContext,
    QualifiedNames,
    column_parent_type,
    entity,
    ref,
)
from pg_metadata.atlan.processes import (  # noqa: F401 (column_processes: this module's API)
    ColumnEdge,
    column_processes,
    process_qualified_name,
)

Source = tuple[str, str, str]  # (schema, relation, column)


@dataclass
class LineageStats:
    """What could not be turned into lineage, for the run's metadata."""

    views: int = 0
    column_edges: int = 0
    unparsed_views: int = 0
    unresolved_columns: int = 0
    unconfirmed_columns: int = 0  # named by the definition but not in pg_depend: dropped
    omitted_inputs: int = 0  # the source is filtered out of this run
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)

    def merge(self, other: LineageStats) -> None:
        for f in fields(self):
            if f.type == "int":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        for example in other.examples:
            self.note(example)

    def metadata(self) -> dict[str, Any]:
        """The figures, for the run's metadata."""
        return {
            "views": self.views,
            "column_edges": self.column_edges,
            "views_without_column_lineage": self.unparsed_views,
            "unresolved_columns": self.unresolved_columns,
            "columns_not_in_pg_depend": self.unconfirmed_columns,
            "inputs_filtered_out": self.omitted_inputs,
        }


def column_lineage(
    definition: str,
    n_columns: int,
    used: set[Source],
    relations: list[tuple[str, str]],
    stats: LineageStats,
) -> list[set[Source]] | None:
    """For each output column of a view definition, the source columns it is computed from;
    None when the definition cannot be parsed. Names are resolved against `relations` (what
    pg_depend says the view reads) and only columns in `used` are kept by the caller."""
    try:
        tree = sqlglot.parse_one(definition, read="postgres")
    except sqlglot.errors.ParseError:
        return None
    resolver = _Resolver(used, relations)
    outputs = resolver.outputs(tree, {})
    stats.unresolved_columns += resolver.unresolved
    if outputs is None or len(outputs) != n_columns:
        return None
    return outputs


class _Resolver:
    """Walks one parsed definition: the columns behind each output column of a query."""

    def __init__(self, used: set[Source], relations: list[tuple[str, str]]) -> None:
        self.used = used
        self.by_name: dict[str, list[str]] = {}
        for schema, name in relations:
            self.by_name.setdefault(name, []).append(schema)
        self.unresolved = 0

    def outputs(
        self, node: exp.Expression, ctes: dict[str, exp.Expression]
    ) -> list[set[Source]] | None:
        """The source columns of each output column of a query (None if it has no shape)."""
        with_ = _arg(node, "with")
        if with_ is not None:
            ctes = {**ctes, **{c.alias_or_name: c.this for c in with_.expressions}}
        if isinstance(node, exp.Subquery):
            return self.outputs(node.this, ctes)
        if isinstance(node, exp.SetOperation):
            left = self.outputs(node.left, ctes)
            right = self.outputs(node.right, ctes)
            if left is None or right is None or len(left) != len(right):
                return None
            return [a | b for a, b in zip(left, right, strict=True)]
        if not isinstance(node, exp.Select):
            return None
        scope = self._sources(node, ctes)
        return [self._expression(p, scope, ctes) for p in node.expressions]

    def _sources(self, select: exp.Select, ctes: dict[str, exp.Expression]) -> dict[str, Any]:
        """Range alias -> ("table", schema, name) or ("query", output sets, output names)."""
        scope: dict[str, Any] = {}
        items = []
        from_ = _arg(select, "from")
        if from_ is not None:
            items.append(from_.this)
        items += [j.this for j in select.args.get("joins") or []]
        stack = list(items)
        while stack:
            item = stack.pop()
            if isinstance(item, exp.Subquery) and not isinstance(item.this, exp.Query):
                item = item.this  # a parenthesized join list: (t1 JOIN t2 USING (a))
            if isinstance(item, exp.Table):
                stack += [j.this for j in item.args.get("joins") or []]
                alias = item.alias_or_name
                if not item.db and item.name in ctes:
                    query = ctes[item.name]
                    scope[alias] = ("query", self.outputs(query, ctes), _names(query))
                else:
                    scope[alias] = ("table", self._schema(item), item.name)
            elif isinstance(item, exp.Subquery):
                scope[item.alias_or_name] = (
                    "query",
                    self.outputs(item.this, ctes),
                    _names(item.this),
                )
            elif isinstance(item, exp.Paren | exp.Join):
                stack.append(item.this)
                stack += [j.this for j in item.args.get("joins") or []]
        return scope

    def _schema(self, table: exp.Table) -> str:
        if table.db:
            return table.db
        schemas = self.by_name.get(table.name, [])
        if len(schemas) == 1:
            return schemas[0]
        return "public" if "public" in schemas else (schemas[0] if schemas else "")

    def _expression(
        self, node: exp.Expression, scope: dict[str, Any], ctes: dict[str, exp.Expression]
    ) -> set[Source]:
        found: set[Source] = set()
        for sub in node.find_all(exp.Subquery):
            # a subquery nested in another is resolved through that one, not here again
            if sub is not node and not _inside_subquery(sub, node):
                for group in self.outputs(sub, ctes) or []:
                    found |= group
        for column in node.find_all(exp.Column):
            if _inside_subquery(column, node):
                continue
            found |= self._column(column, scope)
        return found

    def _column(self, column: exp.Column, scope: dict[str, Any]) -> set[Source]:
        name = column.name
        target = scope.get(column.table) if column.table else None
        if target is None and not column.table and len(scope) == 1:
            target = next(iter(scope.values()))
        if target is None:
            matches = {u for u in self.used if u[2] == name}
            if len(matches) == 1:
                return matches
            self.unresolved += 1
            return set()
        if target[0] == "table":
            return {(target[1], target[2], name)}
        outputs, names = target[1], target[2]
        if outputs is None or name not in names:
            self.unresolved += 1
            return set()
        return outputs[names.index(name)]


def _arg(node: exp.Expression, name: str) -> Any:
    """A clause of a node: sqlglot 30 names `from`/`with` with a trailing underscore."""
    return node.args.get(f"{name}_", node.args.get(name))


def _names(query: exp.Expression) -> list[str]:
    while isinstance(query, exp.Subquery | exp.SetOperation):
        query = query.this if isinstance(query, exp.Subquery) else query.left
    return [p.alias_or_name for p in query.expressions] if isinstance(query, exp.Select) else []


def _inside_subquery(node: exp.Expression, top: exp.Expression) -> bool:
    if node is top:
        return False
    parent = node.parent
    while parent is not None and parent is not top:
        if isinstance(parent, exp.Subquery | exp.Select):
            return True
        parent = parent.parent
    return False


def view_lineage(
    row: Mapping[str, Any],
    select: str | None,
    qn: QualifiedNames,
    ctx: AtlanContext,
    stats: LineageStats,
) -> Iterator[dict[str, Any] | ColumnEdge]:
    """The Process entity of one view, then the ColumnEdge of each of its columns."""
    db, schema, view = row["database_name"], row["schema_name"], row["view_name"]
    view_type = column_parent_type(row["view_kind"], False)
    sync, connection_qn = ctx.sync(), ctx.connection_qualified_name
    view_qn = qn.relation(db, schema, view)
    sources = json.loads(row["sources"] or "[]")
    inputs, selected = [], set()
    for s_schema, s_name, relkind, is_partition, is_selected in sorted(sources):
        if not is_selected:
            stats.omitted_inputs += 1
            continue
        type_name = column_parent_type(relkind, is_partition)
        inputs.append(ref(type_name, qn.relation(db, s_schema, s_name)))
        selected.add((s_schema, s_name))
    stats.views += 1
    process_qn = process_qualified_name(view_qn, connection_qn)
    attrs = {
        **ctx.common(view_qn, process_qn),
        "inputs": inputs,
        "outputs": [ref(view_type, view_qn)],
        "sql": select,
        **sync,
    }
    yield entity(PROCESS, attrs, {"source": "pg_depend"})

    columns = json.loads(row["columns"] or "[]")
    used = {tuple(u) for u in json.loads(row["used_columns"] or "[]")}
    if not columns or select is None:
        return
    relations = [(s[0], s[1]) for s in sources]
    per_column = column_lineage(select, len(columns), used, relations, stats)
    if per_column is None:
        stats.unparsed_views += 1
        stats.note(f"{view_qn}: definition not parsed for column lineage")
        return
    for name, found in zip(columns, per_column, strict=True):
        confirmed = sorted(s for s in found if s in used)
        if len(confirmed) != len(found):
            stats.unconfirmed_columns += len(found) - len(confirmed)
            stats.note(f"{view_qn}/{name}: {sorted(set(found) - set(confirmed))} not in pg_depend")
        kept = [s for s in confirmed if (s[0], s[1]) in selected]
        stats.omitted_inputs += len(confirmed) - len(kept)
        if not kept:
            continue
        stats.column_edges += len(kept)
        yield (f"{view_qn}/{name}", tuple(qn.column(db, *s) for s in kept), process_qn)


# With the compiled parser (sqlglot[c]) one process parses 4,000 views in 1.25 s and two take
# 1.15 s: forking workers (each a copy of a ~300 MB process) pays off only on very many views.
PARALLEL_VIEWS = 20_000


def lineage_results(
    rows: list[Mapping[str, Any]],
    definitions: Mapping[int, str],
    ctx: AtlanContext,
    workers: int | None = None,
) -> tuple[list[dict[str, Any]], list[ColumnEdge], LineageStats]:
    """(Process entities, column edges, stats) of every view (`column_processes` turns the
    edges into entities); many views are parsed on every core (parsing is the cost: about
    1 ms a view)."""
    workers = workers or os.cpu_count() or 1
    daemon = multiprocessing.current_process().daemon  # may not start processes of its own
    if len(rows) < PARALLEL_VIEWS or workers < 2 or daemon:
        return _lineage_chunk((rows, definitions, ctx))
    size = -(-len(rows) // workers)
    chunks = []
    for i in range(0, len(rows), size):
        part = rows[i : i + size]
        chunks.append((part, {r["view_oid"]: definitions.get(r["view_oid"]) for r in part}, ctx))
    processes: list[dict[str, Any]] = []
    edges: list[ColumnEdge] = []
    stats = LineageStats()
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with concurrent.futures.ProcessPoolExecutor(len(chunks), mp_context=context) as pool:
        for p, c, s in pool.map(_lineage_chunk, chunks):
            processes += p
            edges += c
            stats.merge(s)
    return processes, edges, stats


def _lineage_chunk(
    args: tuple[list[Mapping[str, Any]], Mapping[int, str], AtlanContext],
) -> tuple[list[dict[str, Any]], list[ColumnEdge], LineageStats]:
    rows, definitions, ctx = args
    stats = LineageStats()
    qn = QualifiedNames(ctx.connection_qualified_name)
    processes: list[dict[str, Any]] = []
    edges: list[ColumnEdge] = []
    for row in rows:
        for item in view_lineage(row, definitions.get(row["view_oid"]), qn, ctx, stats):
            if isinstance(item, dict):
                processes.append(item)
            else:
                edges.append(item)
    return processes, edges, stats
