"""The web UI's pages over real HTTP on both databases, without a browser: who sees what
with which token, filters and fragments."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import flowtrail
from flowtrail.api import ServeConfig, create_app
from flowtrail.api.auth import Tokens
from flowtrail.settings import Settings
from tests.acceptance.webtools import WORKFLOWS, serve

READ = "r" * 24
OPERATOR = "o" * 24


@pytest.fixture
async def runs(store_url: str) -> dict[str, str]:
    settings = Settings(database_url=store_url)
    paused = await flowtrail.run_async(
        flowtrail.load_workflow(WORKFLOWS / "approval.yaml"), settings=settings
    )
    failed = await flowtrail.run_async(
        flowtrail.load_workflow(WORKFLOWS / "fails.yaml"), settings=settings
    )
    return {"paused": paused.run_id, "failed": failed.run_id}


@pytest.fixture
def site(store_url: str, runs: dict[str, str]) -> Iterator[str]:
    tokens = Tokens.parse([("read", READ), ("operator", OPERATOR)], "test")
    app = create_app(ServeConfig(settings=Settings(database_url=store_url), tokens=tokens))
    with serve(app) as base:
        yield base


def get(base: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    cookies = {"flowtrail_token": token} if token else None
    return httpx.get(base + path, cookies=cookies, timeout=10, **kw)


def test_pages_need_a_token_and_only_operators_get_the_buttons(
    site: str, runs: dict[str, str]
) -> None:
    denied = get(site, "/")
    assert denied.status_code == 401
    assert 'id="token-form"' in denied.text and runs["paused"] not in denied.text
    assert get(site, f"/runs/{runs['paused']}", "x" * 24).status_code == 401
    assert get(site, "/fragments/runs", "x" * 24).status_code == 401

    listed = get(site, "/", READ)
    assert listed.status_code == 200
    assert runs["paused"] in listed.text and runs["failed"] in listed.text

    as_reader = get(site, f"/runs/{runs['paused']}", READ).text
    assert "Pay 120?" in as_reader
    assert "Cancel run" not in as_reader and "Resume with input" not in as_reader
    as_operator = get(site, f"/runs/{runs['paused']}", OPERATOR).text
    assert "Cancel run" in as_operator and "Resume with input" in as_operator
    # the form asks for what the workflow reads of the input
    assert re.search(r'data-field="approved"', as_operator)
    assert re.search(r'data-field="by"', as_operator)
    failed = get(site, f"/runs/{runs['failed']}", OPERATOR).text
    assert "Retry" in failed and "Cancel run" not in failed


def test_filters_fragments_and_bad_input(site: str, runs: dict[str, str]) -> None:
    only_failed = get(site, "/fragments/runs?status=failed", READ).text
    assert runs["failed"] in only_failed and runs["paused"] not in only_failed
    errors = get(site, "/?has_error=true", READ).text
    assert runs["failed"] in errors and runs["paused"] not in errors
    by_name = get(site, "/?workflow=web_approval", READ).text
    assert runs["paused"] in by_name and runs["failed"] not in by_name

    # the page's JSON link is the same query against the API: the same runs
    page = get(site, "/?status=failed&has_error=true", READ).text
    api_link = re.search(r'class="json-link" href="([^"]+)"', page)
    assert api_link is not None
    listed = get(site, api_link.group(1).replace("&amp;", "&"), READ).json()
    assert [r["id"] for r in listed["runs"]] == [runs["failed"]]
    assert re.findall(r'data-id="([0-9a-f]+)"', page) == [runs["failed"]]

    bad = get(site, "/?status=pending&since=yesterday", READ)
    assert bad.status_code == 200
    assert "status: &#39;pending&#39; is not one of" in bad.text
    assert runs["failed"] in bad.text  # the list shows every run instead

    stale = get(site, "/?cursor=not-a-cursor", READ)
    assert stale.status_code == 200 and 'class="problem"' in stale.text
    assert runs["failed"] in stale.text

    unknown = get(site, "/runs/nope", READ)
    assert unknown.status_code == 404 and "Run not found" in unknown.text

    fragment = get(site, f"/fragments/runs/{runs['failed']}", READ)
    assert fragment.status_code == 200 and 'data-terminal="true"' in fragment.text
    assert 'data-terminal="false"' in get(site, f"/fragments/runs/{runs['paused']}", READ).text
    span = get(site, f"/fragments/runs/{runs['failed']}/span?key=2", READ).text
    assert "charge" in span and "declined by the bank" in span and "4000-0000-0000-0002" in span
    missing = get(site, f"/fragments/runs/{runs['failed']}/span?key=9", READ).text
    assert "not in the trace" in missing

    css = get(site, "/static/app.css")
    assert css.status_code == 200 and "--failed" in css.text
    assert get(site, "/static/app.js").status_code == 200


def test_an_empty_list_says_how_to_start_and_a_filtered_one_how_to_clear(
    store_url: str,
) -> None:
    app = create_app(ServeConfig(settings=Settings(database_url=store_url)))
    with serve(app) as base:
        empty = get(base, "/")
        assert empty.status_code == 200
        assert "No runs yet" in empty.text and "flowtrail run FILE" in empty.text
        filtered = get(base, "/fragments/runs", params={"workflow": "nothing"})
        assert "No runs match these filters" in filtered.text
        assert "No runs yet" not in filtered.text
