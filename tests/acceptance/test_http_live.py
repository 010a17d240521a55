"""The live surfaces: a run's server-sent events, the database going away, and
``flowtrail serve`` as a user starts it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.acceptance.apitools import (
    OPERATOR_TOKEN,
    READ_TOKEN,
    ApiServer,
    listening_url,
    serve_process,
    stop_serving,
)
from tests.acceptance.test_http_basics import assert_problem


def read_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Every event of the stream until it ends: ``{id, event, data}``."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "event" in current:
                events.append(current)
            current = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    return events


def test_events_of_a_live_run(api: Callable[..., ApiServer]) -> None:
    with api(poll_seconds=0.1).client() as http:
        started = http.post("/api/v1/workflows/steps/runs", json={"wait": False})
        assert started.status_code == 202
        run_id = started.json()["id"]
        with http.stream("GET", f"/api/v1/runs/{run_id}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = read_events(stream)
        # a client reconnecting after the end gets the final state at once, numbered on
        last = events[-1]["id"]
        with http.stream(
            "GET", f"/api/v1/runs/{run_id}/events", headers={"Last-Event-ID": last}
        ) as again:
            replay = read_events(again)
    assert int(replay[0]["id"]) == int(last) + 1
    assert replay[-1]["event"] == "end"
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "end" and events[-1]["data"]["status"] == "completed"
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    loop_progress = [
        e["data"]["iterations_done"]
        for e in events
        if e["event"] == "step" and e["data"]["block_id"] == "each"
    ]
    # the loop's progress was seen moving while the run went on, not only at its end
    assert len(loop_progress) >= 2 and loop_progress[-1] == 4
    ticks = [e["data"] for e in events if e["event"] == "step" and e["data"]["block_id"] == "tick"]
    assert {t["status"] for t in ticks} >= {"running", "completed"}


def test_events_of_an_unknown_run(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        assert_problem(http.get("/api/v1/runs/nosuch/events"), 404, "run_not_found")


@pytest.mark.postgres
def test_database_down_is_503(api: Callable[..., ApiServer], store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("the PostgreSQL database is taken away; SQLite's file cannot be")
    server = api()
    name = store_url.rsplit("/", 1)[1]
    admin_url = store_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            with server.client() as http:
                assert_problem(http.get("/readyz"), 503, "store_unavailable")
                assert_problem(http.get("/api/v1/runs/anyrun"), 503, "store_unavailable")
                assert http.get("/healthz").status_code == 200
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
            )
    with server.client() as http:  # and it comes back by itself, every reader of the pool
        assert http.get("/readyz").status_code == 200
        for _ in range(2 * server.app.state.readers.size):
            assert_problem(http.get("/api/v1/runs/anyrun"), 404, "run_not_found")
            assert http.get("/api/v1/runs").status_code == 200


def test_flowtrail_serve(store_url: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may call\nread {READ_TOKEN}\noperator {OPERATOR_TOKEN}\n")
    proc = serve_process(store_url, tmp_path, "--port", "0", "--tokens", str(tokens))
    try:
        url = listening_url(proc)
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert_problem(httpx.get(f"{url}/api/v1/runs/x"), 401, "unauthorized")
        headers = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert_problem(httpx.get(f"{url}/api/v1/runs/x", headers=headers), 404, "run_not_found")
        listed = httpx.get(f"{url}/api/v1/workflows", headers=headers).json()
        assert listed == {"workflows": []}
    finally:
        code = stop_serving(proc)
    assert code == 0


def test_serve_refuses_to_expose_without_tokens(store_url: str, tmp_path: Path) -> None:
    proc = serve_process(store_url, tmp_path, "--host", "0.0.0.0", "--port", "0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "refusing to serve on 0.0.0.0 without auth" in out
    bad = tmp_path / "bad-tokens"
    bad.write_text("admin some-token-0123456789abcdef\n")
    proc = serve_process(store_url, tmp_path, "--tokens", str(bad), "--port", "0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "unknown role 'admin'" in out, out
    proc = serve_process(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path, "--port", "0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 5 and "database_not_found" in out, out
    assert not (tmp_path / "missing.db").exists()  # serving never creates a database
