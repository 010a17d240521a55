"""The run list over HTTP: filters, keyset pages stable under inserts, lean rows that are
the CLI's ``runs --json`` rows, and a bad cursor answered as a problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.acceptance.apitools import ApiServer
from tests.acceptance.clitools import Cli
from tests.acceptance.test_http_basics import assert_problem


def _start(http: httpx.Client, workflow: str, payload: Any) -> dict[str, Any]:
    answer = http.post(f"/api/v1/workflows/{workflow}/runs", json={"input": payload})
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()
    return record


def _all_pages(http: httpx.Client, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = http.get("/api/v1/runs", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        ids += [row["id"] for row in page.json()["runs"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


def test_list_filters_pages_and_rows(api: Callable[..., ApiServer], cli: Cli) -> None:
    with api().client() as http:
        hellos = [_start(http, "hello", {"name": f"n{i}"})["id"] for i in range(5)]
        failed = _start(http, "boom", {})["id"]
        paused = _start(http, "approval", {})["id"]
        listed = http.get("/api/v1/runs").json()
        assert [r["id"] for r in listed["runs"]] == [paused, failed, *reversed(hellos)]
        assert listed["next_cursor"] is None
        for row in listed["runs"]:
            assert "input" not in row and "output" not in row and "execution_data" not in row
        by_id = {r["id"]: r for r in listed["runs"]}
        assert by_id[failed]["error"]["block_id"] == "explode"
        assert by_id[paused]["paused"]["waiting_blocks"] == ["approve"]
        # the same rows as the CLI's (ended runs: nothing in them depends on the clock)
        cli_rows = {r["id"]: r for r in cli.runs("--limit", "50")}
        for run_id in [failed, *hellos]:
            assert by_id[run_id] == cli_rows[run_id]

        def ids(**params: Any) -> list[str]:
            answer = http.get("/api/v1/runs", params=params)
            assert answer.status_code == 200, answer.text
            return [r["id"] for r in answer.json()["runs"]]

        assert ids(status=["failed", "paused"]) == [paused, failed]
        assert ids(workflow="hello") == list(reversed(hellos))
        assert ids(has_error="true") == [failed]
        assert failed not in ids(has_error="false")
        assert ids(trigger="api", limit=1) == [paused]
        first = listed["runs"][-1]["started_at"]
        assert ids(until=first) == []
        assert ids(since=first)[-1] == hellos[0]

        # keyset pages: a run started between two pages shifts nothing
        page = http.get("/api/v1/runs", params={"limit": 3}).json()
        seen = [r["id"] for r in page["runs"]]
        newer = _start(http, "hello", {"name": "late"})["id"]
        seen += _all_pages(http, limit=3, cursor=page["next_cursor"])
        assert seen == [paused, failed, *reversed(hellos)]
        assert _all_pages(http, limit=2)[0] == newer

        assert_problem(http.get("/api/v1/runs", params={"cursor": "not-a-cursor"}), 400,
                       "bad_cursor")  # fmt: skip
        assert_problem(http.get("/api/v1/runs", params={"status": "sleeping"}), 422,
                       "invalid_request")  # fmt: skip
        assert_problem(http.get("/api/v1/runs", params={"limit": 0}), 422, "invalid_request")
