"""The lease in the ``runs`` table: an expired lease is always shown, a healthy one's
heartbeat age only while the workflow and block names still fit beside it."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from flowtrail.cli.output import runs_table


def row(run_id: str, workflow: str, state: str, short: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "workflow": workflow,
        "status": "running",
        "finalization_path": None,
        "last_started_block": {"block_id": "fetch_the_orders"},
        "last_completed_block": None,
        "started_at": "2026-12-01T12:00:00+00:00",
        "duration_ms": None,
        "lease": {"state": state, "short": short},
    }


def render(rows: list[dict[str, Any]], width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(runs_table(rows, {}, width))
    return console.export_text()


def test_a_wide_table_shows_every_lease() -> None:
    text = render([row("a" * 10, "orders", "held", "hb 3s ago")], 120)
    assert "running (hb 3s ago)" in text and "fetch_the_orders" in text


def test_a_narrow_table_keeps_the_names_and_still_flags_an_expired_lease() -> None:
    healthy = row("a" * 10, "nightly_orders_import", "held", "hb 3s ago")
    expired = row("b" * 10, "nightly_orders_import", "expired", "lease expired 12s ago")
    wide = render([healthy, expired], 120)
    assert "running (hb 3s ago)" in wide and "running (lease expired 12s ago)" in wide
    narrow = render([row("a" * 10, "orders_import", "held", "hb 3s ago")], 80)
    assert "hb 3s ago" not in narrow  # dropped first: the names need the room
    assert "orders_import" in narrow and "fetch_the_orders" in narrow
    narrowest = render([healthy, expired], 80)
    assert "running (expired)" in narrowest  # the word, at least
    for text in (narrow, narrowest):
        assert all(len(line) <= 80 for line in text.splitlines())
