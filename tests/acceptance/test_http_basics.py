"""The HTTP API as a client sees it: a real uvicorn server on 127.0.0.1, both databases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.acceptance.apitools import ApiServer, both_tokens
from tests.acceptance.clitools import Cli, write_workflow

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:flowtrail:problem:{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_health_ready_and_openapi(api: Callable[..., ApiServer]) -> None:
    server = api()
    with server.client(token=None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        spec = http.get("/openapi.json").json()
        assert "/api/v1/runs/{run_id}" in spec["paths"]
        assert http.get("/docs").status_code == 200


def test_docs_page_loads_its_assets_from_the_server(api: Callable[..., ApiServer]) -> None:
    """/docs works offline: every script, style and icon it names is served by us."""
    server = api()
    with server.client(token=None) as http:
        page = http.get("/docs").text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
        scripts_and_styles = [a for a in assets if a.endswith((".js", ".css", ".png"))]
        assert len(scripts_and_styles) >= 3, page
        for asset in scripts_and_styles:
            assert asset.startswith("/"), f"{asset} is not served by flowtrail"
            answer = http.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 0, asset


def test_run_detail_is_show_json(api: Callable[..., ApiServer], cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "quickie",
        """
        name: quickie
        blocks:
          start: {type: start}
          one: {type: function, call: "acc_blocks:quick", with: {x: 7}}
        connections: [start -> one]
        """,
    )
    ran = cli.run("run", str(wf), "--quiet", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    server = api()
    with server.client() as http:
        detail = http.get(f"/api/v1/runs/{run_id}")
    assert detail.status_code == 200
    shown = cli.show(run_id)
    # a terminal run's lease is None, so nothing in it depends on when it was read
    assert detail.json() == shown


def test_unknown_run_is_a_problem(api: Callable[..., ApiServer]) -> None:
    server = api()
    with server.client() as http:
        for path in ("", "/spans", "/why"):
            assert_problem(http.get(f"/api/v1/runs/nosuchrun{path}"), 404, "run_not_found")
        assert_problem(http.post("/api/v1/runs/nosuchrun/cancel"), 404, "run_not_found")
        assert_problem(http.get("/api/v1/nothing-here"), 404, "not_found")
        assert_problem(http.get("/api/v1/runs/nosuchrun/cancel"), 405, "method_not_allowed")
        assert_problem(http.get("/api/v1/runs/bad%20id"), 422, "invalid_request")


def test_tokens_roles(api: Callable[..., ApiServer]) -> None:
    server = api(tokens=both_tokens())
    with server.client(token=None) as anonymous:
        denied = anonymous.get("/api/v1/runs/whatever")
        assert_problem(denied, 401, "unauthorized")
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200
    with server.client(token="not-a-valid-token-at-all") as wrong:
        assert_problem(wrong.get("/api/v1/runs/whatever"), 401, "unauthorized")
    with server.client(token="read-token-0123456789abcdef") as reader:
        assert_problem(reader.get("/api/v1/runs/whatever"), 404, "run_not_found")
        assert_problem(reader.post("/api/v1/runs/whatever/cancel"), 403, "forbidden")
    with server.client(token="operator-token-0123456789abcdef") as operator:
        assert_problem(operator.post("/api/v1/runs/whatever/cancel"), 404, "run_not_found")
    with server.client(token=None, cookies={"flowtrail_token": "read-token-0123456789abcdef"}) as c:
        assert_problem(c.get("/api/v1/runs/whatever"), 404, "run_not_found")


def test_the_cookie_does_not_carry_a_change_from_another_site(
    api: Callable[..., ApiServer],
) -> None:
    server = api(tokens=both_tokens())
    cookie = {"flowtrail_token": "operator-token-0123456789abcdef"}
    with server.client(token=None, cookies=cookie) as browser:
        forged = browser.post(
            "/api/v1/runs/whatever/cancel", headers={"Origin": "https://evil.example"}
        )
        assert_problem(forged, 403, "cross_origin")
        same = browser.post("/api/v1/runs/whatever/cancel", headers={"Origin": server.url})
        assert_problem(same, 404, "run_not_found")
        read = browser.get("/api/v1/runs/whatever", headers={"Origin": "https://evil.example"})
        assert_problem(read, 404, "run_not_found")
