"""The waterfall's layout and the list's filters, without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowtrail.status import RunStatus
from flowtrail.web import waterfall
from flowtrail.web.filters import FilterError, Filters, parse
from flowtrail.web.pages import _between, resume_fields

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(ms: float) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat()


def span(name: str, start: float, end: float | None, status: str = "success", **kw: Any) -> Any:
    return {
        "name": name,
        "type": kw.pop("type", "function"),
        "status": status,
        "started_at": at(start),
        "ended_at": None if end is None else at(end),
        "children": kw.pop("children", []),
        **kw,
    }


def loop(n: int, failed: set[int] = frozenset()) -> Any:  # type: ignore[assignment]
    iterations = [
        span(
            f"lp #{i}",
            i * 10,
            i * 10 + 10,
            "error" if i in failed else "success",
            type="iteration",
            children=[span("leaf", i * 10, i * 10 + 9, "error" if i in failed else "success")],
        )
        for i in range(n)
    ]
    return span("lp", 0, n * 10, type="loop", block_id="lp", children=iterations)


def test_offsets_and_widths_are_relative_to_the_run_start() -> None:
    tree = span("wf", 0, 1000, type="workflow", children=[span("a", 250, 750, block_id="a")])
    fall = waterfall.build(tree, T0, T0 + timedelta(seconds=5))
    root, a = fall.rows
    assert (root.offset_pct, root.width_pct) == (0.0, 100.0)
    assert (a.offset_pct, a.width_pct, a.duration_ms) == (25.0, 50.0, 500.0)
    assert (a.key, a.parent, a.depth) == ("0", "", 1)


def test_running_spans_reach_now_and_short_ones_stay_visible() -> None:
    tree = span(
        "wf", 0, None, "running", type="workflow",
        children=[span("tiny", 0, 0.01), span("slow", 500, None, "running")],
    )  # fmt: skip
    fall = waterfall.build(tree, T0, T0 + timedelta(seconds=2))
    root, tiny, slow = fall.rows
    assert fall.total_ms == 2000
    assert root.running and slow.running
    assert slow.duration_ms == 1500 and slow.offset_pct + slow.width_pct == 100
    assert tiny.width_pct == waterfall.MIN_BAR_PCT


def test_many_iterations_are_summarized_keeping_the_ends_and_every_failure() -> None:
    tree = span("wf", 0, 1000, type="workflow", children=[loop(100, failed={50, 60})])
    fall = waterfall.build(tree, T0, T0)
    iterations = [r.name for r in fall.rows if r.type == "iteration"]
    assert iterations == [f"lp #{i}" for i in (0, 1, 2, 50, 60, 97, 98, 99)]
    (more,) = [r for r in fall.rows if r.kind == "more"]
    assert more.hidden == 92 and more.name == "… 92 more iterations"
    assert fall.summarized == 92 * 2
    lp = next(r for r in fall.rows if r.name == "lp")
    assert lp.failed_below and "100 iterations, 2 failed" in lp.note
    # the deepest failure is where "jump to error" goes; keys stay those of the full tree
    assert fall.error_key == "0.50.0"
    assert waterfall.find(tree, fall.error_key)["name"] == "leaf"  # type: ignore[index]
    everything = waterfall.build(tree, T0, T0, summarize=False)
    assert sum(1 for r in everything.rows if r.type == "iteration") == 100
    assert everything.summarized == 0


def test_a_handled_failure_is_amber_up_its_chain_and_an_unhandled_one_red() -> None:
    handled_leaf = span("parse", 10, 11, "error", error="bad row", error_handled=True)
    handled_iteration = span("lp #1", 10, 20, "error", type="iteration", children=[handled_leaf])
    ok_iteration = span("lp #0", 0, 10, type="iteration", children=[span("parse", 0, 1)])
    lp = span("lp", 0, 20, type="loop", children=[ok_iteration, handled_iteration])
    tree = span("wf", 0, 20, type="workflow", children=[lp])
    rows = {r.key: r for r in waterfall.build(tree, T0, T0).rows}
    leaf, iteration, container, root = rows["0.1.0"], rows["0.1"], rows["0"], rows[""]
    assert leaf.handled and iteration.handled  # the iteration failed only by its handled block
    assert not any(r.failed_below for r in (iteration, container, root))
    assert container.handled_below and root.handled_below
    # an unhandled failure beside it turns the ancestors red again
    lp["children"].append(
        span("lp #2", 20, 30, "error", type="iteration", children=[span("parse", 20, 21, "error")])
    )
    rows = {r.key: r for r in waterfall.build(tree, T0, T0).rows}
    assert rows["0"].failed_below and rows[""].failed_below
    assert rows["0.2"].failed and not rows["0.2"].handled
    assert rows["0.1"].handled


def test_the_row_cap_says_how_many_spans_are_left_out() -> None:
    tree = span("wf", 0, 1000, type="workflow", children=[loop(100)])
    fall = waterfall.build(tree, T0, T0, summarize=False, max_rows=50)
    assert len(fall.rows) == 51
    cap = fall.rows[-1]
    assert cap.kind == "cap" and cap.hidden == fall.span_count - 50


def test_ticks_come_from_the_fixed_list() -> None:
    assert [t.label for t in waterfall.ticks(49)] == [
        "0", "5ms", "10ms", "15ms", "20ms", "25ms", "30ms", "35ms", "40ms", "45ms",
    ]  # fmt: skip
    assert [t.label for t in waterfall.ticks(4_300)][:4] == ["0", "500ms", "1s", "1.5s"]
    labels = [t.label for t in waterfall.ticks(3 * 3_600_000)]
    assert labels[:3] == ["0", "30m", "1:00:00"]
    assert all(t.offset_pct <= 100 for t in waterfall.ticks(12_345))


def test_settle_closes_iterations_a_later_one_followed() -> None:
    tree = span(
        "lp", 0, None, "running", type="loop",
        children=[
            span("lp #0", 0, None, "running", type="iteration", children=[span("w", 0, 10)]),
            span("lp #1", 10, None, "running", type="iteration",
                 children=[span("w", 10, None, "running")]),
        ],
    )  # fmt: skip
    first, second = waterfall.settle(tree)["children"]
    assert first["status"] == "success" and first["ended_at"] == at(10)
    assert second["status"] == "running"


def test_no_trace_draws_nothing() -> None:
    fall = waterfall.build(None, T0, T0)
    assert fall.rows == [] and fall.span_count == 0


def test_filters_round_trip_through_the_url() -> None:
    filters = parse(
        {"workflow": "etl", "since": "2026-01-01T00:00:00", "min_cost": "0.5", "has_error": "1"},
        ["failed,crashed", "failed"],
    )
    assert filters.statuses == (RunStatus.FAILED, RunStatus.CRASHED)
    assert filters.since == T0 and filters.has_error is True and filters.min_cost == 0.5
    url = filters.url()
    assert url.startswith("/?status=failed&status=crashed&workflow=etl&since=2026-01-01")
    assert "cursor" not in filters.url(cursor=None)
    assert filters.toggle(RunStatus.FAILED).startswith("/?status=crashed&")
    assert Filters().toggle(RunStatus.PAUSED) == "/?status=paused"
    assert filters.api_url().startswith("/api/v1/runs?status=failed&status=crashed&workflow=etl")


@pytest.mark.parametrize(
    ("single", "statuses", "names"),
    [
        ({}, ["pending"], "status"),
        ({"since": "yesterday"}, [], "since"),
        ({"min_duration_ms": "-3"}, [], "min_duration_ms"),
        ({"min_cost": "lots"}, [], "min_cost"),
        ({"has_error": "maybe"}, [], "has_error"),
    ],
)
def test_bad_filters_name_the_value(
    single: dict[str, str], statuses: list[str], names: str
) -> None:
    with pytest.raises(FilterError, match=names):
        parse(single, statuses)


def test_resume_fields_are_what_the_workflow_reads_of_the_input() -> None:
    snapshot = {
        "blocks": {
            "pay": {"output": {"by": "{{ approve.input.by }}", "x": "{{ other.input.no }}"}},
            "decide": {"branches": [{"if": "approve.input.approved and approve.input.by"}]},
        }
    }
    assert resume_fields(snapshot, ["approve"]) == ["by", "approved"]
    assert resume_fields(None, ["approve"]) == []


def test_between_two_timestamps() -> None:
    assert _between(at(0), at(65_000)) == "1m05s"
    assert _between(at(10), at(0)) == "0ms"  # clocks of two machines may disagree
    assert _between(None, at(0)) is None
