"""The recorder's grouped state: the newest-marker rule, usage counting, and the put-back
after a failed write. The runner only reaches these through ``Recorder.resume_from``."""

from __future__ import annotations

from datetime import UTC, datetime

from flowtrail.diagnostics.recorder import Markers, Usage
from flowtrail.engine.events import BlockCompleted, Tokens
from flowtrail.store.records import CompletedMarker, StartedMarker


def _started(block: str, second: int) -> StartedMarker:
    return StartedMarker(block, block, "function", datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC))


def _completed(block: str, second: int) -> CompletedMarker:
    at = datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)
    return CompletedMarker(block, block, "function", at, True)


def test_equal_timestamps_replace_and_older_never_do() -> None:
    markers = Markers()
    markers.note_started(_started("a", 5))
    markers.note_started(_started("b", 5))
    markers.note_started(_started("old", 1))
    markers.note_completed(_completed("x", 3))
    markers.note_completed(_completed("older", 2))
    assert markers.started is not None and markers.started.block_id == "b"
    assert markers.completed is not None and markers.completed.block_id == "x"
    started, completed = markers.take()
    assert (started, completed) == (markers.started, markers.completed)
    assert markers.take() == (None, None)  # taken once


def test_put_back_keeps_a_newer_marker_noted_while_the_write_failed() -> None:
    markers = Markers()
    markers.note_started(_started("a", 1))
    markers.note_completed(_completed("a", 2))
    started, completed = markers.take()
    markers.note_started(_started("b", 3))  # noted during the failed write
    markers.put_back(started, completed)
    again_started, again_completed = markers.take()
    assert again_started is not None and again_started.block_id == "b"
    assert again_completed == completed


def test_usage_counts_tokens_and_models_and_says_when_the_cost_changed() -> None:
    usage = Usage()

    def done(cost: float | None, model: str | None) -> BlockCompleted:
        tokens = Tokens(prompt=3, completion=4)
        return BlockCompleted(
            "r", "b", "b", "agent", (), 0.0, 1.0, True, tokens=tokens, model=model, cost=cost
        )

    assert usage.add(done(0.25, "m1")) is True
    assert usage.add(done(None, "m2")) is False
    assert usage.add(done(0.5, "m1")) is True
    assert (usage.cost_total, usage.tokens_prompt, usage.tokens_completion) == (0.75, 9, 12)
    assert usage.tokens_total == 21
    assert usage.models == {"m1", "m2"}
