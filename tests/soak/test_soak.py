"""Soak runs (``pytest -m slow``; not part of the default suite): many runs in one process
and a long loop, checking that memory follows live state and every run ends explained."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from flowtrail.model.compile import compile_definition
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import RunFilter, open_store

pytestmark = pytest.mark.slow

BLOCKS = "async def step(x):\n    return {'x': x, 'pad': 'p' * 200}\n"


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _loop_workflow(tmp_path: Path, iterations: int, name: str) -> object:
    (tmp_path / "soak_blocks.py").write_text(BLOCKS)
    definition = WorkflowDefinition.model_validate({
        "name": name,
        "blocks": {
            "start": {"type": "start"},
            "many": {"type": "loop", "count": iterations, "max_iterations": iterations,
                     "blocks": {"s": {"type": "function", "call": "soak_blocks:step",
                                      "with": {"x": "{{ loop.index }}"}}}},
        },
        "connections": ["start -> many"],
    })  # fmt: skip
    return compile_definition(definition, source=tmp_path / f"{name}.yaml")


async def test_many_runs_in_one_process_do_not_grow_memory(store_url: str, tmp_path: Path) -> None:
    workflow = _loop_workflow(tmp_path, 200, "soak-many")
    store = open_store(store_url)
    await store.open()
    try:
        runner = Runner(Settings(), store)
        for _ in range(20):  # warm up: caches, connection, allocator
            assert (await runner.run(workflow)).status is RunStatus.COMPLETED
        gc.collect()
        before = _rss_mib()
        for _ in range(200):
            assert (await runner.run(workflow)).status is RunStatus.COMPLETED
        gc.collect()
        grown = _rss_mib() - before
        rows = await store.list_runs(RunFilter(workflow_name="soak-many", limit=1000))
    finally:
        await store.close()
    assert len(rows) == 220 and all(r.status is RunStatus.COMPLETED for r in rows)
    assert grown < 40, f"RSS grew {grown:.1f} MiB over 200 runs"


async def test_a_long_loop_keeps_results_not_history(store_url: str, tmp_path: Path) -> None:
    workflow = _loop_workflow(tmp_path, 60_000, "soak-long")
    store = open_store(store_url)
    await store.open()
    try:
        settings = Settings(max_spans_in_memory=20_000, trace_budget_bytes=1_000_000)
        report = await asyncio.wait_for(Runner(settings, store).run(workflow), 900)
        record = await store.get_run(report.run_id)
    finally:
        await store.close()
    assert report.status is RunStatus.COMPLETED
    assert record.trace_span_count == 1 + 1 + 1 + 60_000 * 2
    truncation = record.execution_data["truncation"]
    assert truncation["tier"] in ("summary", "minimal")
    assert truncation["elided_spans"] >= 60_000 * 2 - 20_000
