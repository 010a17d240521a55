"""How runs look on a terminal: the summary after a run and ``flowtrail show``."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from flowtrail.diagnostics.view import span_lines

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "paused": "blue",
    "running": "cyan",
    "crashed": "red",
    "queued": "dim",
}


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def _marker(marker: dict[str, Any] | None, when: str) -> str:
    if not marker:
        return "—"
    extra = "" if "success" not in marker else (" ✓" if marker["success"] else " ✗")
    return f"{marker['block_id']} ({marker['block_type']}) at {marker[when]}{extra}"


def show_record(console: Console, data: dict[str, Any], *, spans: bool = True) -> None:
    status = data["status"]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run", data["id"])
    if data.get("recorded") is False:
        table.add_row("record", "[dim]off (--no-record): nothing was stored[/]")
    table.add_row("workflow", data["workflow"])
    table.add_row("status", f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]")
    table.add_row(
        "finalization",
        f"{data['finalization_path'] or '—'}"
        + (f" (by {data['finalized_by']})" if data.get("finalized_by") else ""),
    )
    table.add_row("last started", _marker(data["last_started_block"], "started_at"))
    table.add_row("last completed", _marker(data["last_completed_block"], "ended_at"))
    if data.get("error"):
        err = data["error"]
        where = f" (block {err['block_id']})" if err.get("block_id") else ""
        table.add_row("error", f"[red]{escape(str(err['message']))}[/]{escape(where)}")
    if data.get("completion_failure"):
        table.add_row("completion failure", f"[yellow]{escape(data['completion_failure'])}[/]")
    if data.get("paused"):
        waiting = ", ".join(data["paused"]["waiting_blocks"])
        if data["paused"].get("message"):
            waiting += f" — {data['paused']['message']}"
        table.add_row("waiting for input", escape(waiting))
    table.add_row("started", str(data["started_at"]))
    table.add_row("ended", str(data["ended_at"] or "—"))
    table.add_row("duration", f"{data['duration_ms']} ms" if data["duration_ms"] else "—")
    tokens = data["tokens"]
    table.add_row(
        "cost",
        f"${data['cost_total']:.6f}  tokens {tokens['total']}"
        + (f"  models {', '.join(data['models'])}" if data["models"] else ""),
    )
    table.add_row("spans", str(data["trace_span_count"]))
    if data.get("marker_write_failures"):
        table.add_row("marker write failures", str(data["marker_write_failures"]))
    for note in data.get("notes") or []:
        table.add_row(
            "note",
            f"late {note.get('status')} result ignored ({note.get('path')}, at {note.get('at')})",
        )
    if data.get("output") is not None:
        text = json.dumps(data["output"], default=str)
        table.add_row("output", escape(text if len(text) < 400 else text[:400] + "…"))
    console.print(table, highlight=False)
    exec_data = data.get("execution_data") or {}
    trace = exec_data.get("trace") if isinstance(exec_data, dict) else None
    if spans and trace:
        tree, hidden = span_tree(trace)
        console.print(tree)
        if hidden:
            console.print(f"[dim]… {hidden} more spans (--json for all)[/]")
        trunc = exec_data.get("truncation")
        if trunc:
            console.print(f"[dim]trace compacted: {trunc}[/]")


SPAN_LINES = 200  # span lines shown by default; the error paths come on top
ERROR_PATHS = 5  # error spans past the cut whose path is still shown
_WALK_ALL = 10**9


def span_tree(trace: dict[str, Any], limit: int = SPAN_LINES) -> tuple[Tree, int]:
    """The first ``limit`` spans (depth first), plus the path from the root to every error
    span past the cut (the failing block must never be hidden); returns the tree and how
    many spans were left out."""
    lines = span_lines(trace, limit=_WALK_ALL)
    parents = _parents([depth for depth, _, _ in lines])
    keep = set(range(min(limit, len(lines))))
    has_error_child = {parents[i] for i, line in enumerate(lines) if line[2] == "error"}
    beyond = [
        i
        for i in range(len(keep), len(lines))
        if lines[i][2] == "error" and i not in has_error_child
    ]
    for i in beyond[:ERROR_PATHS]:
        while i >= 0 and i not in keep:
            keep.add(i)
            i = parents[i]
    root = Tree(_styled(*lines[0][1:]))
    nodes: dict[int, Tree] = {0: root}
    for i in sorted(keep - {0}):
        parent = nodes[parents[i]]
        if i - 1 not in keep:
            parent.add("[dim]…[/]")  # spans were skipped here
        nodes[i] = parent.add(_styled(*lines[i][1:]))
    return root, len(lines) - len(keep)


def _parents(depths: list[int]) -> list[int]:
    """Index of each line's parent line (-1 for the root), from the depth-first depths."""
    parents: list[int] = []
    stack: list[int] = []
    for i, depth in enumerate(depths):
        del stack[depth:]
        parents.append(stack[-1] if stack else -1)
        stack.append(i)
    return parents


def _styled(label: str, status: str) -> str:
    colour = {
        "success": "green",
        "error": "red",
        "cancelled": "yellow",
        "paused": "blue",
        "abandoned": "yellow",
        "running": "cyan",
    }.get(status, "white")
    return f"[{colour}]{status}[/] {escape(label)}"


def runs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    table.add_column("run", no_wrap=True, min_width=32)
    for col in ("workflow", "status", "path", "last block", "started", "ms"):
        table.add_column(col, overflow="fold")
    for data in rows:
        marker = data["last_completed_block"] or data["last_started_block"]
        table.add_row(
            data["id"],
            data["workflow"],
            f"[{STATUS_STYLE.get(data['status'], 'white')}]{data['status']}[/]",
            data["finalization_path"] or "—",
            marker["block_id"] if marker else "—",
            str(data["started_at"])[:19],
            str(data["duration_ms"] or "—"),
        )
    return table
