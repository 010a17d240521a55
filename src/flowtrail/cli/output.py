"""How runs look on a terminal: the summary after a run and ``flowtrail show``."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flowtrail.cli.progress import CHILD
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

LEASE_STYLE = {"expired": "red", "late": "yellow"}


def print_json(console: Console, data: Any, *, indent: int | None = 2) -> None:
    """JSON written to the console's file as it is: no markup is read (brackets in user
    data print as they are), and Rich does not lay out every line of a large record (a
    1,000-block run's record took 150 ms through ``Console.print``). Indented on a
    terminal; on one line into a pipe or a file, where ``json``'s C encoder writes it
    (indenting falls back to the pure-Python one: 25 ms for that record)."""
    file = console.file
    pretty = indent is not None and file.isatty()
    file.write(json.dumps(data, indent=indent if pretty else None, default=str) + "\n")
    file.flush()


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
    if data.get("lease"):
        lease = data["lease"]
        style = LEASE_STYLE.get(lease["state"], "white")
        table.add_row("lease", f"[{style}]{escape(lease['text'])}[/]")
    if data.get("why"):
        found = data["why"]
        table.add_row("why", f"[bold]{found['verdict']}[/]: {escape(found['summary'])}")
    table.add_row("last started", _marker(data["last_started_block"], "started_at"))
    table.add_row("last completed", _marker(data["last_completed_block"], "ended_at"))
    if data.get("error"):
        err = data["error"]
        where = f" (block {err['block_id']})" if err.get("block_id") else ""
        if err.get("path"):  # a failure inside child workflows: the way down to it
            where = f" (block {err['block_id']}, via {CHILD.join(err['path'])})"
        table.add_row("error", f"[red]{escape(str(err['message']))}[/]{escape(where)}")
    if data.get("completion_failure"):
        table.add_row("completion failure", f"[yellow]{escape(data['completion_failure'])}[/]")
    if data.get("paused"):
        waiting = ", ".join(data["paused"]["waiting_blocks"])
        if data["paused"].get("message"):
            waiting += f" — {data['paused']['message']}"
        table.add_row("waiting for input", escape(waiting))
    table.add_row("started", str(data["started_at"] or "—"))
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
        table.add_row("note", escape(note_text(note)))
    if data.get("output") is not None:
        text = json.dumps(data["output"], default=str)
        table.add_row("output", escape(text if len(text) < 400 else text[:400] + "…"))
    console.print(table, highlight=False)
    if data.get("pruned_at"):
        console.print(
            f"[dim]trace pruned on {escape(str(data['pruned_at']))}: its spans, steps and "
            "output were dropped by `flowtrail prune`; the summary above is as it was[/]"
        )
        return
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


VERDICT_STYLE = {
    "running_healthy": "cyan",
    "queued_waiting_for_worker": "dim",
    "waiting_for_input": "blue",
    "cancelling": "yellow",
    "ended": "green",
}


def show_verdict(console: Console, data: dict[str, Any]) -> None:
    """``flowtrail why``: the verdict, its one-sentence summary, then the evidence, one
    fact a line (nested facts as ``block.started_at``)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    status = data["status"]
    table.add_row("run", data["run_id"])
    table.add_row("status", f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]")
    style = VERDICT_STYLE.get(data["verdict"], "red")
    table.add_row("verdict", f"[bold {style}]{data['verdict']}[/]")
    table.add_row("why", escape(data["summary"]))
    console.print(table, highlight=False)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    for key, value in _flat(data["evidence"]):
        facts.add_row(escape(key), escape(value))
    if facts.row_count:
        console.print("[bold]evidence[/]")
        console.print(facts, highlight=False)


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict) and "block_id" in value:  # a marker: one line, as `show` has it
        return [(prefix, _marker(value, "started_at" if "started_at" in value else "ended_at"))]
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            if item is not None:
                rows.extend(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value) or "—")]
    return [(prefix, json.dumps(value) if isinstance(value, bool) else str(value))]


SPAN_LINES = 200  # span lines shown by default; the error paths come on top
ERROR_PATHS = 5  # error spans past the cut whose path is still shown
_WALK_ALL = 10**9


def span_tree(trace: dict[str, Any], limit: int = SPAN_LINES) -> tuple[Tree, int]:
    """The first ``limit`` spans (depth first), plus the path from the root to every error
    span past the cut (the failing block must never be hidden); returns the tree and how
    many spans were left out."""
    lines = span_lines(trace, limit=_WALK_ALL)
    parents = _parents([line.depth for line in lines])
    keep = set(range(min(limit, len(lines))))
    has_error_child = {parents[i] for i, line in enumerate(lines) if line.status == "error"}
    beyond = [
        i
        for i in range(len(keep), len(lines))
        if lines[i].status == "error" and i not in has_error_child
    ]
    for i in beyond[:ERROR_PATHS]:
        while i >= 0 and i not in keep:
            keep.add(i)
            i = parents[i]
    root = Tree(_styled(lines[0].label, lines[0].status))
    nodes: dict[int, Tree] = {0: root}
    for i in sorted(keep - {0}):
        parent = nodes[parents[i]]
        if i - 1 not in keep:
            parent.add("[dim]…[/]")  # spans were skipped here
        nodes[i] = parent.add(_styled(lines[i].label, lines[i].status))
        captured = block_output(lines[i].span)
        if captured is not None:
            nodes[i].add(captured)
    return root, len(lines) - len(keep)


LOG_LINES = 10  # captured output lines shown under a block; --json has them all
LOG_LINE_CHARS = 300


def block_output(span: dict[str, Any]) -> Text | None:
    """What the block printed (stdout, stderr, logging), as captured on its span under
    ``logs`` (``logs_truncated``: characters dropped at capture): its first lines, and a
    hint to ``--json`` when there is more."""
    logs = span.get("logs")
    if not isinstance(logs, str) or not logs:
        return None
    lines = logs.rstrip("\n").splitlines()
    text = Text("output:", style="bold dim")
    for line in lines[:LOG_LINES]:
        cut = line if len(line) <= LOG_LINE_CHARS else line[: LOG_LINE_CHARS - 1] + "…"
        text.append("\n" + cut, style="dim")
    more = []
    if len(lines) > LOG_LINES:
        more.append(f"{len(lines) - LOG_LINES} more lines")
    dropped = span.get("logs_truncated")
    if isinstance(dropped, int) and dropped > 0:
        more.append(f"{dropped} characters dropped when captured")
    if len(lines) > LOG_LINES or any(len(line) > LOG_LINE_CHARS for line in lines):
        more.append("--json for all")
    if more:
        text.append(f"\n… {', '.join(more)}", style="dim italic")
    return text


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


def note_text(note: dict[str, Any]) -> str:
    """One line for a note on a run: a late result, or what ended the run from outside
    its engine (the sweeper, a cancel of a run whose process was gone)."""
    if note.get("kind") == "late_result":
        return f"late {note.get('status')} result ignored ({note.get('path')}, at {note.get('at')})"
    who = f" by {note['who']}" if note.get("who") else ""
    return f"{note.get('kind')}{who} at {note.get('at')}: {note.get('why', '')}"


def runs_table(rows: list[dict[str, Any]], short_ids: dict[str, str], width: int) -> Table:
    """Fits ``width`` columns (80 included): short ids, compact times, and long workflow
    or block names cut with an ellipsis. The "last block" is where a running or paused run
    is now, or a crashed one died (its last started block), and the last completed block
    of any other finished one. A running run's status says how its lease stands, as fully
    as the names still fit beside it: an expired or late lease always (``(expired)`` at the
    narrowest), the heartbeat age of a healthy one when there is room."""
    headers = ["run", "workflow", "status", "last block", "started (UTC)", "took"]
    for detail in (LEASE_FULL, LEASE_TROUBLE, LEASE_TERSE):
        cells: list[list[Text]] = []
        for data in rows:
            status = data["status"]
            if status in ("running", "paused", "queued", "crashed"):
                marker = data["last_started_block"]
            else:
                marker = data["last_completed_block"] or data["last_started_block"]
            cells.append(
                [
                    Text(short_ids.get(data["id"], data["id"])),
                    Text(data["workflow"]),
                    _status_label(data, detail),
                    Text(marker["block_id"] if marker else "—"),
                    Text(_when(data["started_at"])),
                    Text(_took(data["duration_ms"])),
                ]
            )
        widths = [max([len(h)] + [r[i].cell_len for r in cells]) for i, h in enumerate(headers)]
        # each gap between columns: one space of padding either side and the box's divider
        fixed = sum(widths[i] for i in (0, 2, 4, 5)) + 3 * (len(headers) - 1)
        room = max(16, width - fixed)  # for the workflow and block names
        if widths[1] + widths[3] <= room:
            break
    if widths[1] + widths[3] > room:
        block = max(8, min(widths[3], room // 2))
        widths[1], widths[3] = max(8, room - block), block
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, header in enumerate(headers):
        table.add_column(
            header,
            no_wrap=True,
            overflow="ellipsis",
            max_width=widths[i],
            justify="right" if header == "took" else "left",
        )
    for row in cells:
        table.add_row(*row)
    return table


# How much of a running run's lease the runs table shows: all of it; only an expired or
# late one; only the word for it.
LEASE_FULL, LEASE_TROUBLE, LEASE_TERSE = range(3)


def _status_label(data: dict[str, Any], detail: int) -> Text:
    status = data["status"]
    label = Text(status, style=STATUS_STYLE.get(status, "white"))
    lease = data.get("lease")
    trouble = lease is not None and lease["state"] in LEASE_STYLE
    if lease and (detail == LEASE_FULL or trouble):
        text = lease["state"] if detail == LEASE_TERSE else lease["short"]
        label.append(f" ({text})", style=LEASE_STYLE.get(lease["state"], "dim"))
    path = data["finalization_path"]
    if path and path not in (status, "force_failed"):
        label.append(f" ({path})", style="dim")  # the unusual paths: fallback_completed
    return label


def _when(iso: str | None) -> str:
    return "—" if not iso else f"{iso[5:10]} {iso[11:19]}"


def _took(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def short_id_length(run_id: str, neighbours: tuple[str | None, str | None], minimum: int) -> int:
    """The shortest prefix of ``run_id`` no other id shares (its neighbours in id order)."""
    shared = max((_common(run_id, other) for other in neighbours if other), default=0)
    return min(len(run_id), max(minimum, shared + 1))


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def inputs_table(declared: list[dict[str, Any]]) -> Table:
    """A workflow's declared inputs: name, type, required or its default (a long one cut:
    ``--json`` has it whole), description."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in ("input", "type", "required", "default", "description"):
        table.add_column(header, overflow="fold")
    for spec in declared:
        default = spec["default"]
        table.add_row(
            Text(spec["name"]),
            Text(spec["type"]),
            Text("yes" if spec["required"] else "no"),
            Text("—" if default is None else _preview(json.dumps(default, default=str))),
            Text(spec["description"] or ""),
        )
    return table


def _preview(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
