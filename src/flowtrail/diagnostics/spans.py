"""Build the trace-span tree from engine events: one root, container → iteration → block
for loops and parallels at any depth, child workflows nested under their block."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowtrail.diagnostics.masking import Masker
from flowtrail.engine.events import (
    BlockCompleted,
    BlockStarted,
    ContainerCompleted,
    ContainerStarted,
    Event,
    IterationCompleted,
    Path,
)

Span = dict[str, Any]
Key = tuple[tuple[str, str, int], ...]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _ms(start: float, end: float) -> int:
    return max(0, round((end - start) * 1000))


def _key(path: Path) -> Key:
    return tuple((f.container_id, f.kind, f.index) for f in path)


class SpanTree:
    """Accumulates spans as events arrive. Past ``max_spans``, further spans are counted but
    not kept (the count stays exact; the stored trace says how many were elided)."""

    def __init__(
        self, workflow: str, started_at: float, masker: Masker, max_spans: int = 50_000
    ) -> None:
        self.masker = masker
        self.max_spans = max_spans
        self.count = 1
        self.elided = 0
        self.paused_spans = 0  # left open by a pause, for a resume to continue
        self.root: Span = self._span(workflow, "workflow", started_at)
        self._blocks: dict[tuple[Key, str], Span] = {}  # open and placeholder block spans
        self._iterations: dict[Key, Span] = {}

    def _span(self, name: str, kind: str, started_at: float, block_id: str | None = None) -> Span:
        # Times stay floats (``_t0``/``_t1``) while running; ``clean`` formats them once.
        span: Span = {
            "name": name,
            "type": kind,
            "status": "running",
            "children": [],
            "_t0": started_at,
            "_t1": None,
        }
        if block_id is not None:
            span["block_id"] = block_id
        return span

    def _attach(self, parent: Span, span: Span) -> bool:
        if self.count >= self.max_spans:
            self.elided += 1
            self.count += 1
            return False
        parent["children"].append(span)
        self.count += 1
        return True

    def _parent(self, path: Path, at: float) -> Span:
        """The span that holds an event at ``path``, creating iteration spans on first use."""
        parent = self.root
        for depth, frame in enumerate(path):
            owner_key = (_key(path[:depth]), frame.container_id)
            owner = self._blocks.get(owner_key)
            if owner is None:  # the container/workflow block span was elided or not begun
                owner = self._span(frame.container_id, frame.kind, at, frame.container_id)
                self._blocks[owner_key] = owner
                self._attach(parent, owner)
            if frame.kind == "workflow":
                parent = owner
                continue
            it_key = _key(path[: depth + 1])
            iteration = self._iterations.get(it_key)
            if iteration is None:
                iteration = self._span(f"{frame.container_id} #{frame.index}", "iteration", at)
                iteration["index"] = frame.index
                self._iterations[it_key] = iteration
                self._attach(owner, iteration)
            parent = iteration
        return parent

    def _open(self, path: Path, block_id: str, name: str, kind: str, at: float) -> Span:
        key = (_key(path), block_id)
        span = self._blocks.get(key)
        if span is None or span["status"] != "running" or span["type"] != kind:
            span = self._span(name, kind, at, block_id)
            self._blocks[key] = span
            self._attach(self._parent(path, at), span)
        return span

    def _close(self, span: Span, ended: float, status: str) -> None:
        span["_t1"] = ended
        span["status"] = status
        if status == "paused" and span is not self.root:
            self.paused_spans += 1

    def add(self, event: Event) -> None:
        if isinstance(event, BlockStarted):
            self._open(
                event.path, event.block_id, event.block_name, event.block_type, event.started_at
            )
        elif isinstance(event, ContainerStarted):
            span = self._open(
                event.path, event.block_id, event.block_name, event.block_type, event.started_at
            )
            if event.total is not None:
                span["total"] = event.total
        elif isinstance(event, BlockCompleted):
            self._complete(event)
        elif isinstance(event, IterationCompleted):
            child_path = (*event.path, _frame(event))
            it_key = _key(child_path)
            found = self._iterations.pop(it_key, None)
            if found is None:
                found = self._parent(child_path, event.started_at)
                self._iterations.pop(it_key, None)
            span = found
            span["_t0"] = event.started_at
            self._close(span, event.ended_at, "success" if event.success else "error")
        elif isinstance(event, ContainerCompleted):
            span = self._take(event)
            span["iterations"] = event.iterations
            if event.error:
                span["error"] = self.masker(event.error)
                span["error_handled"] = event.handled
            self._close(span, event.ended_at, _status(event.success, event.paused))

    def _safe_mask(self, value: Any) -> Any:
        """Masked, or a note saying why the value could not be kept (a cycle, say)."""
        try:
            return self.masker(value)
        except Exception as exc:
            return f"<not recordable: {type(exc).__name__}>"

    def _take(self, event: BlockCompleted | ContainerCompleted) -> Span:
        """The span an ending block closes: its open one, or (if its start was never
        seen, e.g. elided) a new one. Either way it leaves the index of open spans."""
        key = (_key(event.path), event.block_id)
        span = self._blocks.pop(key, None)
        if span is None:
            span = self._open(
                event.path, event.block_id, event.block_name, event.block_type, event.started_at
            )
            self._blocks.pop(key, None)
        return span

    def _complete(self, event: BlockCompleted) -> None:
        span = self._take(event)
        mask = self._safe_mask
        span["input"] = mask(event.input)
        span["output"] = mask(event.output)
        if event.error:
            span["error"] = mask(event.error)
            span["error_handled"] = event.handled
        if event.tries > 1:
            span["tries"] = event.tries
        if event.reused:
            span["reused"] = True
        if event.tokens is not None:
            span["tokens"] = {
                "prompt": event.tokens.prompt,
                "completion": event.tokens.completion,
                "total": event.tokens.total,
            }
        if event.model:
            span["model"] = event.model
        if event.cost is not None:
            span["cost"] = event.cost
        if event.logs:
            span["logs"] = mask(event.logs)
            if event.logs_truncated:
                span["logs_truncated"] = event.logs_truncated
        self._close(span, event.ended_at, _status(event.success, event.paused))

    def seed(self, trace: Span | None, recorded_count: int, paused_spans: int) -> None:
        """Continue a trace stored at a pause: earlier spans stay, the root reopens, and
        the spans the pause left open are continued. The count stays exact even when the
        stored trace was compacted or dropped: a span left open that cannot be reopened
        will be made again, so it is not counted twice."""
        reopened = 0
        if trace is not None:
            revived = _revive(trace)
            self.root["children"] = revived["children"]
            self.root["_t0"] = revived["_t0"]
            reopened = self._reopen(self.root, ())
        kept = count(self.root)
        self.count = max(recorded_count - paused_spans + reopened, kept)
        self.elided = self.count - kept

    def _reopen(self, span: Span, frames: Key) -> int:
        """Index the spans a pause left open, so the resumed run continues them (the
        paused container, its iteration, the waiting block) instead of starting copies.
        Returns how many were reopened."""
        reopened = 0
        for child in span.get("children", []):
            if child.get("type") == "iteration":
                key: Key = (*frames, (span.get("block_id", ""), span["type"], child["index"]))
                if child["status"] == "paused":
                    child["status"], child["_t1"] = "running", None
                    child.pop("_seeded", None)  # continued: it ends in this segment
                    self._iterations[key] = child
                    reopened += 1
                reopened += self._reopen(child, key)
            elif "block_id" in child:
                if child["status"] == "paused":
                    child["status"], child["_t1"] = "running", None
                    child.pop("_seeded", None)
                    self._blocks[(frames, child["block_id"])] = child
                    reopened += 1
                inner = (*frames, (child["block_id"], "workflow", 0))
                reopened += self._reopen(child, inner if child["type"] == "workflow" else frames)
        return reopened

    def finish(self, ended_at: float, status: str) -> Span:
        """Close the root and anything still open: left ``paused`` at a pause (a resume
        reopens them), ``cancelled`` by a cancel, ``abandoned`` otherwise."""
        left = {"paused": "paused", "cancelled": "cancelled"}.get(status, "abandoned")
        for span in list(self._blocks.values()) + list(self._iterations.values()):
            if span["status"] == "running":
                self._close(span, ended_at, left)
        self._close(self.root, ended_at, status)
        return self.root


def _status(success: bool, paused: bool) -> str:
    if paused:
        return "paused"
    return "success" if success else "error"


def _frame(event: IterationCompleted) -> Any:
    from flowtrail.engine.events import Frame

    return Frame(event.container_id, event.container_type, event.index)


def clean(span: Span) -> Span:
    """A copy ready to serialise: times formatted, private keys gone."""
    t0, t1 = span.get("_t0"), span.get("_t1")
    out: Span = {
        "name": span.get("name"),
        "type": span.get("type"),
        "started_at": iso(t0) if t0 is not None else None,
        "ended_at": iso(t1) if t1 is not None else None,
        "duration_ms": _ms(t0, t1) if t0 is not None and t1 is not None else None,
    }
    out.update((k, v) for k, v in span.items() if not k.startswith("_") and k != "children")
    out["children"] = [clean(c) for c in span["children"]]
    return out


def count(span: Span) -> int:
    """The spans in a tree (stored or running), itself included."""
    return 1 + sum(count(c) for c in span.get("children", []))


def _revive(span: Span) -> Span:
    """A stored span back in its running form (float times)."""
    out = {k: v for k, v in span.items() if k not in ("started_at", "ended_at", "duration_ms")}
    out["children"] = [_revive(c) for c in span.get("children", [])]
    started, ended = span.get("started_at"), span.get("ended_at")
    out["_t0"] = datetime.fromisoformat(started).timestamp() if started else 0.0
    out["_t1"] = datetime.fromisoformat(ended).timestamp() if ended else None
    out["_seeded"] = True  # ended in an earlier segment (before a pause): exported then
    return out
