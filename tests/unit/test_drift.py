"""Drift that once crept in: one duration bound for the finalizer and the store, and no
error class that nothing raises."""

from __future__ import annotations

import flowtrail.errors
from flowtrail.diagnostics.finalize import duration_ms
from flowtrail.store import common


def test_one_duration_bound_for_the_finalizer_and_the_store() -> None:
    assert common.MAX_DURATION_MS == 2**53
    assert duration_ms(0.0, 1e300) == common.MAX_DURATION_MS


def test_the_never_raised_deadline_error_is_gone() -> None:
    assert not hasattr(flowtrail.errors, "RunDeadlineExceeded")


def test_one_span_count_for_running_and_stored_trees() -> None:
    import flowtrail.diagnostics.compaction as compaction
    from flowtrail.diagnostics.spans import count

    assert not hasattr(compaction, "_count")  # compaction counts with spans.count
    stored = {
        "type": "workflow",
        "children": [{"type": "block"}, {"type": "block", "children": []}],
    }
    assert count(stored) == 3  # a stored leaf may have no "children" key
