"""Helpers for the web UI's browser tests: runs in every status in a real database, and
the app served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import flowtrail
from flowtrail.liveness.sweeper import Sweeper
from flowtrail.runner import new_run_id, store_snapshot
from flowtrail.settings import Settings
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import open_store
from flowtrail.store.common import utcnow
from flowtrail.store.records import CompletedMarker, Finalization, NewRun, StartedMarker, Worker

WORKFLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "workflows" / "web"


HUGE_ITERATIONS = 3333  # 10,001 spans
HUGE_FAILED = {1200, 2500}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _running_row(store: Any, lease_seconds: float) -> str:
    """A running run held by a worker on another host that stopped renewing its lease."""
    workflow = flowtrail.load_workflow(WORKFLOWS / "slow.yaml")
    run_id = new_run_id()
    await store.create_run(
        NewRun(
            id=run_id,
            workflow_name=workflow.name,
            snapshot_hash=await store_snapshot(store, workflow),
            status=RunStatus.RUNNING,
            trigger="api",
            started_at=utcnow(),
            input={},
            worker=Worker(host="worker-7.elsewhere", pid=4242, id="worker-7"),
            lease_seconds=lease_seconds,
        )
    )
    return run_id


async def populate(url: str) -> dict[str, str]:
    """Runs in each status; their ids by name."""
    settings = Settings(database_url=url, lease_seconds=1.0)
    ids: dict[str, str] = {}

    def load(name: str) -> Any:
        return flowtrail.load_workflow(WORKFLOWS / f"{name}.yaml")

    ids["failed"] = (await flowtrail.run_async(load("fails"), settings=settings)).run_id
    ids["to_retry"] = (await flowtrail.run_async(load("fails"), settings=settings)).run_id
    ids["completed"] = (await flowtrail.run_async(load("nested"), settings=settings)).run_id
    ids["cancelled"] = (await flowtrail.run_async(load("approval"), settings=settings)).run_id
    await flowtrail.cancel_async(ids["cancelled"], settings=settings)
    ids["paused"] = (
        await flowtrail.run_async(load("approval"), {"amount": 75}, settings=settings)
    ).run_id
    ids["to_resume"] = (await flowtrail.run_async(load("approval"), settings=settings)).run_id
    async with open_store(url) as store:
        crashed = await _running_row(store, 0.5)
        await asyncio.sleep(0.7)
        await Sweeper(store, settings).sweep_once()
        ids["crashed"] = crashed
        ids["stuck"] = await _running_row(store, 0.5)
        queued = new_run_id()
        await store.create_run(
            NewRun(
                id=queued,
                workflow_name="web_slow",
                snapshot_hash=await store_snapshot(
                    store, flowtrail.load_workflow(WORKFLOWS / "slow.yaml")
                ),
                status=RunStatus.QUEUED,
                trigger="queue",
                started_at=utcnow(),
                input={},
                queue_name="flowtrail",
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        ids["queued"] = queued
        ids["huge"] = await huge_run(store, HUGE_ITERATIONS, HUGE_FAILED)
    return ids


def huge_trace(iterations: int, failed: set[int]) -> tuple[dict[str, Any], int]:
    """A stored trace of one loop with ``iterations`` iterations of two blocks each (the
    ones in ``failed`` with a handled error), as the finalizer writes it; and its span
    count."""
    t0 = utcnow()

    def at(ms: float) -> str:
        return (t0 + timedelta(milliseconds=ms)).isoformat()

    def block(name: str, start: float, end: float, status: str = "success") -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": name, "type": "function", "block_id": name, "status": status,
            "started_at": at(start), "ended_at": at(end), "duration_ms": round(end - start),
            "input": {"i": start}, "output": {"ok": status == "success"}, "children": [],
        }  # fmt: skip
        if status == "error":
            out.update(error=f"ValueError: row {start} is malformed", error_handled=True)
        return out

    items = []
    for i in range(iterations):
        status = "error" if i in failed else "success"
        items.append(
            {
                "name": f"rows #{i}",
                "type": "iteration",
                "index": i,
                "status": status,
                "started_at": at(i * 2),
                "ended_at": at(i * 2 + 2),
                "duration_ms": 2,
                "children": [
                    block("parse", i * 2, i * 2 + 1, status),
                    block("save", i * 2 + 1, i * 2 + 2),
                ],
            }
        )
    end = iterations * 2
    loop = {
        "name": "rows", "type": "loop", "block_id": "rows", "status": "success",
        "started_at": at(0), "ended_at": at(end), "duration_ms": end, "iterations": iterations,
        "children": items,
    }  # fmt: skip
    root = {
        "name": "web_huge", "type": "workflow", "status": "success", "started_at": at(0),
        "ended_at": at(end), "duration_ms": end, "children": [loop],
    }  # fmt: skip
    return root, 2 + iterations * 3


async def huge_run(store: Any, iterations: int, failed: set[int]) -> str:
    """A completed run whose stored trace has ``2 + 3 * iterations`` spans."""
    workflow = flowtrail.load_workflow(WORKFLOWS / "slow.yaml")
    run_id = new_run_id()
    trace, spans = huge_trace(iterations, failed)
    started = datetime.fromisoformat(trace["started_at"])
    await store.create_run(
        NewRun(
            id=run_id, workflow_name="web_huge",
            snapshot_hash=await store_snapshot(store, workflow), status=RunStatus.RUNNING,
            trigger="api", started_at=started, input={}, lease_seconds=60,
        )
    )  # fmt: skip
    ended = started + timedelta(milliseconds=trace["duration_ms"])
    await store.finalize(
        run_id,
        Finalization(
            status=RunStatus.COMPLETED, path=FinalizationPath.COMPLETED,
            finalized_by=FinalizedBy.ENGINE, ended_at=ended, duration_ms=trace["duration_ms"],
            execution_data={"trace": trace, "truncation": None}, has_trace_spans=True,
            trace_span_count=spans,
            # as a real run leaves them: its last block, the last iteration's save
            started=StartedMarker("save", "save", "function", ended - timedelta(milliseconds=1)),
            completed=CompletedMarker("save", "save", "function", ended, True),
        ),
    )  # fmt: skip
    return run_id


def make_app(url: str) -> FastAPI:
    """``flowtrail serve``'s app on ``url``, with a stand-in for any operator call the API
    does not have yet (resume)."""
    from flowtrail.api import ServeConfig, create_app

    settings = Settings(database_url=url)
    app = create_app(ServeConfig(settings=settings))
    paths = {getattr(route, "path", None) for route in app.routes}
    if "/api/v1/runs/{run_id}/resume" not in paths:

        async def resume(run_id: str, request: Request) -> JSONResponse:
            body = await request.json()
            report = await flowtrail.resume_async(run_id, body.get("input"), settings=settings)
            return JSONResponse({"id": run_id, "status": report.status.value})

        app.add_api_route("/api/v1/runs/{run_id}/resume", resume, methods=["POST"])
    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a real uvicorn on 127.0.0.1 (a free port), in a thread; its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
