"""flowtrail: a workflow engine whose every run leaves a durable trail.

The public Python API::

    import flowtrail

    workflow = flowtrail.load_workflow("examples/quickstart/quickstart.yaml")
    report = flowtrail.run(workflow, {"count": 3})          # embedded SQLite by default
    print(report.status, report.output)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from flowtrail.engine.blocks import Prices, Reported
from flowtrail.engine.events import Event, Tokens
from flowtrail.engine.observers import Observer
from flowtrail.errors import (
    BlockError,
    FlowtrailError,
    InputError,
    RunNotFoundError,
    RunStateError,
    StoreError,
    WorkflowError,
)
from flowtrail.model.compile import compile_definition, compile_file
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.graph import Workflow
from flowtrail.runner import RunHandle, Runner, RunReport
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, RunStatus
from flowtrail.store import RunRecord, Store, open_store

load_workflow = compile_file


async def run_async(
    workflow: Workflow,
    inputs: Any = None,
    *,
    settings: Settings | None = None,
    record: bool = True,
    observers: Sequence[Observer] = (),
) -> RunReport:
    """Run a workflow to the end with its durable record (``record=False``: none)."""
    settings = settings or Settings.from_env()
    if not record:
        return await Runner(settings).run(workflow, inputs, observers=observers)
    store = open_store(settings.database_url)
    await store.open()
    try:
        await store.migrate()
        return await Runner(settings, store).run(workflow, inputs, observers=observers)
    finally:
        await store.close()


def run(workflow: Workflow, inputs: Any = None, **kwargs: Any) -> RunReport:
    """The synchronous door: ``asyncio.run(run_async(...))``."""
    return asyncio.run(run_async(workflow, inputs, **kwargs))


__all__ = [
    "BlockError",
    "Event",
    "FinalizationPath",
    "FlowtrailError",
    "InputError",
    "Observer",
    "Prices",
    "Reported",
    "RunHandle",
    "RunNotFoundError",
    "RunRecord",
    "RunReport",
    "RunStateError",
    "RunStatus",
    "Runner",
    "Settings",
    "Store",
    "StoreError",
    "Tokens",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowError",
    "compile_definition",
    "compile_file",
    "load_workflow",
    "open_store",
    "run",
    "run_async",
]
