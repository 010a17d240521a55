"""Starting and steering runs over HTTP: a real server, both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.acceptance.apitools import READ_TOKEN, ApiServer, both_tokens, wait_until
from tests.acceptance.test_http_basics import assert_problem


def start(http: httpx.Client, workflow: str, **body: Any) -> httpx.Response:
    return http.post(f"/api/v1/workflows/{workflow}/runs", json=body)


def test_workflows_list_their_declared_inputs(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        listed = http.get("/api/v1/workflows").json()["workflows"]
    by_name = {w["name"]: w for w in listed}
    assert sorted(by_name) == ["approval", "boom", "hello", "sleepy", "steps"]
    assert by_name["hello"]["description"] == "Greets someone."
    assert by_name["hello"]["inputs"] == [
        {"name": "name", "type": "string", "required": True, "default": None,
         "description": "Who to greet."},
        {"name": "times", "type": "integer", "required": False, "default": 1,
         "description": None},
    ]  # fmt: skip
    assert by_name["approval"]["can_pause"] is True


def test_start_and_wait_answers_the_record(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        ran = start(http, "hello", input={"name": "ana"})
        assert ran.status_code == 200, ran.text
        record = ran.json()
        assert record["status"] == "completed"
        assert record["trigger"] == "api"
        assert record["output"] == {"result": "hello ana"}
        assert record["input"] == {"name": "ana", "times": 1}
        assert http.get(f"/api/v1/runs/{record['id']}").json()["status"] == "completed"
        spans = http.get(f"/api/v1/runs/{record['id']}/spans").json()
        assert spans["partial"] is False and spans["source"] == "trace"
        assert [c["name"] for c in spans["root"]["children"]] == ["start", "greet"]


def test_bad_start_input_is_refused_and_nothing_runs(
    api: Callable[..., ApiServer], store_url: str
) -> None:
    with api().client() as http:
        body = assert_problem(start(http, "hello", input={"name": 5}), 422, "invalid_input")
        assert "'name' must be string" in str(body["detail"])
        assert_problem(start(http, "hello", input={}), 422, "invalid_input")
        assert_problem(start(http, "hello", input=[1, 2]), 422, "invalid_input")
        assert_problem(start(http, "nosuch", input={}), 404, "workflow_not_found")
        assert_problem(start(http, "hello", inputs={}), 422, "invalid_request")
        assert_problem(start(http, "hello", wait="soon"), 422, "invalid_request")
    assert _run_count(store_url) == 0


def _run_count(url: str) -> int:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM workflow_execution_logs").fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM workflow_execution_logs").fetchone()
        assert row is not None
        return int(row[0])


def test_start_without_waiting_then_cancel(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        started = start(http, "sleepy", input={"seconds": 30}, wait=False)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.headers["location"] == f"/api/v1/runs/{run_id}"
        assert http.get(started.headers["location"]).json()["status"] == "running"
        partial = http.get(f"/api/v1/runs/{run_id}/spans").json()
        assert partial["partial"] is True and partial["source"] == "steps"
        cancelled = http.post(f"/api/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["requested"] is True
        ended = wait_until(
            lambda: (r := http.get(f"/api/v1/runs/{run_id}").json())["status"] == "cancelled" and r
        )
        assert ended["cancel_requested_by"] == "api"
        assert_problem(http.post(f"/api/v1/runs/{run_id}/cancel"), 409, "run_ended")


def test_resume_with_input(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        paused = start(http, "approval", input={})
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        run_id = paused.json()["id"]
        assert paused.json()["paused"]["waiting_blocks"] == ["approve"]
        # block `pay` reads the input: resuming without one is refused, the run stays paused
        body = assert_problem(http.post(f"/api/v1/runs/{run_id}/resume", json={}), 422,
                              "invalid_input")  # fmt: skip
        assert "approve" in str(body["detail"])
        assert http.get(f"/api/v1/runs/{run_id}").json()["status"] == "paused"
        resumed = http.post(
            f"/api/v1/runs/{run_id}/resume", json={"input": {"by": "ana"}, "wait": True}
        )
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "completed"
        assert resumed.json()["output"] == {"approved_by": "ana"}
        again = http.post(f"/api/v1/runs/{run_id}/resume", json={"input": {"by": "bo"}})
        assert_problem(again, 409, "not_paused")


def test_resume_without_waiting_answers_202(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        run_id = start(http, "approval", input={}).json()["id"]
        resumed = http.post(f"/api/v1/runs/{run_id}/resume", json={"input": {"by": "cy"}})
        assert resumed.status_code == 202, resumed.text
        assert resumed.headers["location"] == f"/api/v1/runs/{run_id}"
        done = wait_until(
            lambda: (r := http.get(f"/api/v1/runs/{run_id}").json())["status"] == "completed" and r
        )
        assert done["output"] == {"approved_by": "cy"}


def test_retry(api: Callable[..., ApiServer]) -> None:
    with api().client() as http:
        failed = start(http, "boom", input={}).json()
        assert failed["status"] == "failed"
        assert failed["error"]["block_id"] == "explode"
        retried = http.post(f"/api/v1/runs/{failed['id']}/retry", json={"wait": True})
        assert retried.status_code == 200, retried.text
        again = retried.json()
        assert again["retry_of"] == failed["id"] and again["attempt"] == 2
        assert again["status"] == "failed" and again["trigger"] == "api"
        twice = http.post(f"/api/v1/runs/{failed['id']}/retry", json={})
        assert_problem(twice, 409, "not_retryable")  # it was retried already
        bad_from = http.post(f"/api/v1/runs/{again['id']}/retry", json={"from_block": "nope"})
        assert_problem(bad_from, 422, "invalid_input")
        completed = start(http, "hello", input={"name": "x"}).json()
        assert_problem(http.post(f"/api/v1/runs/{completed['id']}/retry", json={}), 409,
                       "not_retryable")  # fmt: skip
        queued = http.post(f"/api/v1/runs/{again['id']}/retry", json={"wait": False})
        assert queued.status_code == 202, queued.text
        assert queued.headers["location"] == f"/api/v1/runs/{queued.json()['id']}"


def test_queue_start(api: Callable[..., ApiServer], store_url: str) -> None:
    with api().client() as http:
        queued = start(http, "hello", input={"name": "q"}, queue=True)
        if store_url.startswith("sqlite"):
            assert_problem(queued, 409, "queue_unavailable")
            assert _run_count(store_url) == 0
            return
        assert queued.status_code == 202, queued.text
        run_id = queued.json()["id"]
        assert queued.headers["location"] == f"/api/v1/runs/{run_id}"
        assert queued.json()["status"] == "queued"
        assert http.get(f"/api/v1/runs/{run_id}").json()["why"]["verdict"].startswith("queued")
    with psycopg.connect(store_url) as conn:
        row = conn.execute(
            "SELECT status, queue_name, job_id FROM workflow_execution_logs WHERE id = %s",
            (run_id,),
        ).fetchone()
        assert row is not None and row[0] == "queued" and row[1] == "flowtrail"
        job = conn.execute(
            "SELECT status FROM procrastinate_jobs WHERE id = %s", (row[2],)
        ).fetchone()
        assert job == ("todo",)


@pytest.mark.parametrize(
    ("content", "headers", "code"),
    [
        (b'{"input": ', {"content-type": "application/json"}, "invalid_json"),
        (b"\xff\xfe", {"content-type": "application/json"}, "invalid_json"),
    ],
)
def test_invalid_json(
    api: Callable[..., ApiServer], content: bytes, headers: dict[str, str], code: str
) -> None:
    with api().client() as http:
        answer = http.post("/api/v1/workflows/hello/runs", content=content, headers=headers)
        assert_problem(answer, 400, code)


def test_body_over_the_limit(api: Callable[..., ApiServer]) -> None:
    server = api(max_body_bytes=1000)
    big = b'{"input": {"name": "' + b"x" * 2000 + b'"}}'
    with server.client() as http:
        assert_problem(
            http.post("/api/v1/workflows/hello/runs", content=big,
                      headers={"content-type": "application/json"}),
            413, "body_too_large",
        )  # fmt: skip

        def chunks() -> Any:  # no Content-Length: the limit counts what streams in
            for i in range(0, len(big), 100):
                yield big[i : i + 100]

        streamed = http.post(
            "/api/v1/workflows/hello/runs",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert "content-length" not in streamed.request.headers
        assert_problem(streamed, 413, "body_too_large")
        small = start(http, "hello", input={"name": "fits"})
        assert small.status_code == 200


def test_runs_still_going_when_the_server_stops_end_crashed(
    api: Callable[..., ApiServer], store_url: str
) -> None:
    server = api()
    with server.client() as http:
        run_id = start(http, "sleepy", input={"seconds": 60}, wait=False).json()["id"]
    server.stop()
    ended = _row(store_url, run_id)
    assert ended == ("crashed", "server_shutdown")


def _row(url: str, run_id: str) -> tuple[str, str]:
    query = "SELECT status, crash_cause FROM workflow_execution_logs WHERE id = "
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            found = conn.execute(query + "?", (run_id,)).fetchone()
    else:
        with psycopg.connect(url) as conn:
            found = conn.execute(query + "%s", (run_id,)).fetchone()
    assert found is not None
    return (found[0], found[1])


def test_prune(api: Callable[..., ApiServer]) -> None:
    server = api(tokens=both_tokens())
    with server.client() as http:
        done = start(http, "hello", input={"name": "old"}).json()
        assert done["steps"]
        paused = start(http, "approval", input={}).json()
        dry = http.post("/api/v1/prune", json={"older_than": "0s", "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] is True and dry.json()["runs"] == 1
        assert http.get(f"/api/v1/runs/{done['id']}").json()["steps"]
        pruned = http.post("/api/v1/prune", json={"older_than": "0s"}).json()
        assert pruned["runs"] == 1 and pruned["steps"] >= 2
        after = http.get(f"/api/v1/runs/{done['id']}").json()
        assert after["status"] == "completed" and after["steps"] == []
        assert after["output"] is None and after["pruned_at"]
        spans = http.get(f"/api/v1/runs/{done['id']}/spans").json()
        assert (spans["source"], spans["root"]) == ("pruned", None)
        assert spans["pruned_at"] == after["pruned_at"]
        assert http.get(f"/api/v1/runs/{paused['id']}").json()["status"] == "paused"
        assert_problem(http.post("/api/v1/prune", json={"older_than": "soon"}), 422, "bad_age")
        assert_problem(
            http.post("/api/v1/prune", json={"older_than": "1d", "statuses": ["running"]}),
            422,
            "not_prunable",
        )
        assert_problem(
            http.post("/api/v1/prune", json={"older_than": "1d", "statuses": ["bogus"]}),
            422,
            "invalid_request",
        )
    with server.client(token=READ_TOKEN) as reader:
        assert_problem(reader.post("/api/v1/prune", json={"older_than": "1d"}), 403, "forbidden")
