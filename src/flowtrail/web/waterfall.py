"""The trace waterfall as rows: a span tree (stored, or built from the steps of a run
still going) flattened depth-first onto one time axis that starts at the run's start.

Pure: a tree, the run's start and the time it is drawn at in, rows and ticks out, so the
layout is tested without a browser.

Huge runs are **summarized**, not virtualized: a container with more than
``ITERATIONS_SHOWN_EACH_END * 2 + 2`` iterations shows its first and last few, every failed
one, and one "… N more" row for the rest; and the whole waterfall stops at ``MAX_ROWS`` rows
with a row that says how many spans are left out. The page's "render all" draws every
span (``summarize=False``, ``max_rows=MAX_ROWS_ALL``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ITERATIONS_SHOWN_EACH_END = 3
MAX_ROWS = 1500
MAX_ROWS_ALL = 100_000
"""Rows drawn by "render all": a stored trace holds at most 50,000 spans in memory
(``Settings.max_spans_in_memory``), so this only guards against a corrupt one."""
MIN_BAR_PCT = 0.4

# Tick spacings tried in order; the first that gives at most MAX_TICKS ticks is used
# (about 80 px apart on a waterfall 800 px wide).
TICK_STEPS_MS = (
    1, 2, 5, 10, 20, 50, 100, 200, 500,
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
    3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
)  # fmt: skip
MAX_TICKS = 10

FAILED = frozenset({"error", "failed"})
OPEN = frozenset({"running"})


@dataclass(frozen=True, slots=True)
class Tick:
    offset_pct: float
    label: str


@dataclass(slots=True)
class Row:
    """One line of the waterfall: a span, or (``kind`` ``more``/``cap``) a stand-in for
    the spans summarized away."""

    key: str
    """The span's place in the tree: child indexes joined by ``.`` (``""`` is the root)."""
    parent: str | None
    depth: int
    name: str
    type: str
    status: str
    block_id: str | None = None
    start_ms: float | None = None
    duration_ms: float | None = None
    offset_pct: float = 0.0
    width_pct: float = 0.0
    running: bool = False
    failed: bool = False
    handled: bool = False
    """It failed, and an error edge or an ``on_error`` took the failure (the run went on)."""
    failed_below: bool = False
    """A span under this one failed unhandled (its name is drawn red even when it
    succeeded)."""
    handled_below: bool = False
    """A span under this one failed and the failure was handled (drawn amber)."""
    has_children: bool = False
    note: str = ""
    kind: str = "span"
    hidden: int = 0
    hidden_failed: int = 0


@dataclass(slots=True)
class Waterfall:
    rows: list[Row]
    ticks: list[Tick]
    total_ms: float
    span_count: int
    summarized: int = 0
    """Spans not drawn because of summarizing (0 when everything is drawn)."""
    error_key: str | None = None
    """The deepest failed span drawn: where "jump to error" goes."""
    keys_by_block: dict[str, str] = field(default_factory=dict)


def parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(slots=True)
class _Timed:
    """A span with its times resolved (in ms from the run start)."""

    span: dict[str, Any]
    start: float | None
    end: float | None
    running: bool
    failed_below: bool
    handled_below: bool
    children: list[_Timed]
    size: int
    latest: float
    """The latest end in its subtree (the axis must reach it)."""


def _resolve(span: dict[str, Any], origin: datetime, now_ms: float) -> _Timed:
    # One pass over every span of the tree (10,000 of them on a big run): kept plain.
    children = [_resolve(c, origin, now_ms) for c in span.get("children") or ()]
    started, ended = parse_ts(span.get("started_at")), parse_ts(span.get("ended_at"))
    start = (started - origin).total_seconds() * 1000 if started else None
    end = (ended - origin).total_seconds() * 1000 if ended else None
    first = last = None
    failed_below = handled_below = False
    size = 1
    latest = 0.0
    for child in children:
        size += child.size
        latest = max(latest, child.latest)
        if child.start is not None and (first is None or child.start < first):
            first = child.start
        if child.end is not None and (last is None or child.end > last):
            last = child.end
        failed_below = failed_below or child.failed_below
        handled_below = handled_below or child.handled_below
        if child.span.get("status") in FAILED:
            if _handled(child):
                handled_below = True
            else:
                failed_below = True
    if start is None:
        start = first
    running = span.get("status") in OPEN
    if end is None:
        if running:
            end = now_ms
        elif start is not None and span.get("duration_ms") is not None:
            end = start + float(span["duration_ms"])
        else:
            end = last
    if end is not None and end > latest:
        latest = end
    return _Timed(span, start, end, running, failed_below, handled_below, children, size, latest)


def _handled(node: _Timed) -> bool:
    """A failed span whose failure did not stop its run: an error edge took it, or it is
    a container or iteration that failed only because a handled failure inside it did."""
    span = node.span
    return bool(span.get("error_handled")) or (
        not span.get("error") and not node.failed_below and node.handled_below
    )


def _failed(node: _Timed) -> bool:
    return node.span.get("status") in FAILED or node.failed_below or node.handled_below


def _summarize(children: list[_Timed]) -> list[_Timed | tuple[int, int]]:
    """The children drawn under a container: every non-iteration child, the first and
    last iterations, every failed one, and ``(hidden, hidden_failed)`` in the gap."""
    iterations = [c for c in children if c.span.get("type") == "iteration"]
    each = ITERATIONS_SHOWN_EACH_END
    if len(iterations) <= each * 2 + 2:
        return list(children)
    keep = {id(c) for c in iterations[:each] + iterations[-each:]}
    keep.update(id(c) for c in iterations if _failed(c))
    out: list[_Timed | tuple[int, int]] = []
    hidden = hidden_spans = 0
    gap_at: int | None = None
    for child in children:
        if child.span.get("type") != "iteration" or id(child) in keep:
            out.append(child)
            continue
        if gap_at is None:
            gap_at = len(out)
        hidden += 1
        hidden_spans += child.size
    if gap_at is not None:
        out.insert(gap_at, (hidden, hidden_spans))
    return out


def _duration_note(node: _Timed) -> str:
    span = node.span
    iterations = [c for c in node.children if c.span.get("type") == "iteration"]
    parts: list[str] = []
    if iterations:
        failed = sum(1 for c in iterations if _failed(c))
        durations = sorted(  # of the iterations that ended: a running one is no figure yet
            c.end - c.start
            for c in iterations
            if c.start is not None and c.end is not None and not c.running
        )
        text = f"{len(iterations)} iteration{'s' if len(iterations) != 1 else ''}"
        if failed:
            text += f", {failed} failed"
        if durations:
            mid = durations[len(durations) // 2]
            text += (
                f" · min {fmt_ms(durations[0])} · median {fmt_ms(mid)}"
                f" · max {fmt_ms(durations[-1])}"
            )
        parts.append(text)
    done, total = span.get("iterations_done"), span.get("iterations_total")
    if done is not None:
        parts.append(f"{done}/{'?' if total is None else total} done")
    if span.get("elided_iterations"):
        parts.append(f"{span['elided_iterations']} iterations not stored")
    if span.get("tries"):
        parts.append(f"tries {span['tries']}")
    if span.get("reused"):
        parts.append("reused")
    return " · ".join(parts)


def build(
    trace: dict[str, Any] | None,
    origin: datetime,
    now: datetime,
    *,
    summarize: bool = True,
    max_rows: int = MAX_ROWS,
) -> Waterfall:
    """The waterfall of ``trace`` (a root span) for a run that started at ``origin``, as
    seen at ``now`` (running spans reach ``now``)."""
    if not trace:
        return Waterfall([], ticks(1.0), 1.0, 0)
    now_ms = max(0.0, (now - origin).total_seconds() * 1000)
    root = _resolve(trace, origin, now_ms)
    total = max(1.0, root.latest)
    rows: list[Row] = []
    fall = Waterfall(rows, ticks(total), total, root.size)
    error_depth = -1
    capped = False

    def emit(node: _Timed, key: str, parent: str | None, depth: int) -> None:
        nonlocal error_depth, capped
        if capped:
            return
        if len(rows) >= max_rows:
            capped = True
            return
        span = node.span
        start = node.start
        end = node.end if node.end is not None else start
        status = str(span.get("status") or "unknown")
        row = Row(
            key=key,
            parent=parent,
            depth=depth,
            name=str(span.get("name") or span.get("block_id") or "?"),
            type=str(span.get("type") or "?"),
            status=status,
            block_id=span.get("block_id"),
            start_ms=start,
            duration_ms=(end - start) if start is not None and end is not None else None,
            running=node.running,
            failed=status in FAILED,
            handled=status in FAILED and _handled(node),
            failed_below=node.failed_below,
            handled_below=node.handled_below,
            has_children=bool(node.children),
            note=_duration_note(node),
        )
        if start is not None:
            row.offset_pct = min(100.0, 100 * start / total)
            width = 100 * (row.duration_ms or 0) / total
            row.width_pct = max(MIN_BAR_PCT, min(width, 100.0 - row.offset_pct))
        rows.append(row)
        if row.failed and depth > error_depth:
            error_depth, fall.error_key = depth, key
        if row.block_id and (row.failed or row.block_id not in fall.keys_by_block):
            fall.keys_by_block[row.block_id] = key
        drawn: list[_Timed | tuple[int, int]] = (
            _summarize(node.children) if summarize else list(node.children)
        )
        for index, child in _numbered(node.children, drawn):
            if isinstance(child, tuple):
                hidden, spans = child
                fall.summarized += spans
                rows.append(
                    Row(
                        key=f"{key}.more",
                        parent=key,
                        depth=depth + 1,
                        name=f"… {hidden} more iterations",
                        type="more",
                        status="",
                        kind="more",
                        hidden=hidden,
                    )
                )
                continue
            emit(child, f"{key}.{index}" if key else str(index), key, depth + 1)

    emit(root, "", None, 0)
    if capped:
        drawn_spans = sum(1 for r in rows if r.kind == "span")
        left = max(0, root.size - drawn_spans - fall.summarized)
        fall.summarized += left
        rows.append(
            Row(key="cap", parent=None, depth=0, name=f"… {left} more spans", type="cap",
                status="", kind="cap", hidden=left)
        )  # fmt: skip
    return fall


def _numbered(
    children: list[_Timed], drawn: list[_Timed | tuple[int, int]]
) -> Iterator[tuple[int, _Timed | tuple[int, int]]]:
    """Each drawn child with its index among all children (keys stay stable whatever is
    summarized away)."""
    index_of = {id(c): i for i, c in enumerate(children)}
    for item in drawn:
        yield (-1 if isinstance(item, tuple) else index_of[id(item)]), item


def settle(span: dict[str, Any]) -> dict[str, Any]:
    """Close the iteration spans of a tree built from steps whose blocks all ended and
    that a later iteration (or the container's end) followed: steps record blocks and
    containers, not iterations, so those stay ``running`` there. Changes ``span`` in
    place and returns it."""
    children = span.get("children") or []
    iterations = [c for c in children if c.get("type") == "iteration"]
    for child in children:
        settle(child)
        if child.get("type") != "iteration" or child.get("status") not in OPEN:
            continue
        inner = child.get("children") or []
        followed = child is not iterations[-1] or span.get("status") not in OPEN
        if not inner or not followed or any(c.get("status") in OPEN for c in inner):
            continue
        child["status"] = "error" if any(c.get("status") in FAILED for c in inner) else "success"
        ends = [e for e in (parse_ts(c.get("ended_at")) for c in inner) if e is not None]
        if ends:
            child["ended_at"] = max(ends).isoformat()
    return span


def find(trace: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The span at ``key`` (as ``Row.key``) in ``trace``; ``None`` when there is none."""
    node = trace
    if node is None:
        return None
    for part in key.split(".") if key else ():
        children = node.get("children") or []
        if not part.isdigit() or int(part) >= len(children):
            return None
        node = children[int(part)]
    return node


def ticks(total_ms: float) -> list[Tick]:
    step = next((s for s in TICK_STEPS_MS if total_ms / s <= MAX_TICKS), TICK_STEPS_MS[-1])
    out: list[Tick] = []
    at = 0
    while at <= total_ms:
        out.append(Tick(100 * at / total_ms, fmt_tick(at, step)))
        at += step
    return out


def fmt_tick(ms: float, step: int) -> str:
    """``0``, ``250ms``, ``1.5s``, ``30s``, ``2m``, ``1:00:05``."""
    if ms == 0:
        return "0"
    if step < 1000:
        return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}ms"
    seconds = int(ms // 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if secs == 0 else f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def fmt_ms(ms: float | None) -> str:
    """A duration for people: ``850ms``, ``2.4s``, ``3m05s``, ``2h07m``."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{round(ms)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
