"""The web UI in a real browser: Debian's Chromium driven by Playwright, against the app
on a real uvicorn and a real SQLite file holding runs in every status.

Screenshots go to ``$FLOWTRAIL_ARTIFACTS`` (default ``tests/artifacts/web``). Without
Chromium the tests skip, unless ``FLOWTRAIL_REQUIRE_BROWSER=1`` makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowtrail.store import open_store
from tests.acceptance.webtools import (
    HUGE_FAILED,
    HUGE_ITERATIONS,
    WORKFLOWS,
    make_app,
    populate,
    serve,
)

REQUIRE_BROWSER = os.environ.get("FLOWTRAIL_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(
    os.environ.get("FLOWTRAIL_ARTIFACTS")
    or Path(__file__).resolve().parents[1] / "artifacts" / "web"
)
TIMEOUT_MS = 15_000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        message = "Chromium (Debian's chromium) and the playwright package are needed"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    return found


class Site:
    def __init__(self, base: str, ids: dict[str, str], url: str, folder: Path) -> None:
        self.base, self.ids, self.url, self.folder = base, ids, url, folder

    def start_run(self, name: str, run_input: str) -> subprocess.Popen[bytes]:
        """``flowtrail run`` in a process of its own, writing to this database."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        return subprocess.Popen(
            [sys.executable, "-m", "flowtrail", "run", str(WORKFLOWS / f"{name}.yaml"),
             "--db", self.url, "--input", run_input, "--quiet"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _chromium()
    folder = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{folder / 'flowtrail.db'}"

    async def setup() -> dict[str, str]:
        async with open_store(url) as store:
            await store.migrate()
        return await populate(url)

    ids = asyncio.run(setup())
    with serve(make_app(url)) as base:
        yield Site(base, ids, url, folder)


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Any, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def test_runs_list_status_chips_and_filters(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(site.base + "/")
    rows = page.locator("tr.run-row")
    for run_id in site.ids.values():
        expect(page.locator(f'tr.run-row[data-id="{run_id}"]')).to_be_visible()
    for status in ("queued", "running", "paused", "completed", "failed", "cancelled", "crashed"):
        expect(page.locator(f'tr.run-row[data-status="{status}"]').first).to_be_visible()
    # the run whose worker stopped renewing its lease is flagged with its verdict
    stuck = page.locator(f'tr.run-row[data-id="{site.ids["stuck"]}"]')
    expect(stuck.locator(".stuck-chip")).to_contain_text("lease expired")
    expect(stuck.locator(".stuck-why")).to_contain_text("worker-7")
    expect(page.locator(f'tr[data-id="{site.ids["failed"]}"] .where')).to_contain_text("declined")
    expect(page.locator("#live-text")).to_contain_text("live")
    shot(page, "list")

    page.get_by_role("link", name="failed", exact=True).click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator(f'tr.run-row[data-id="{site.ids["failed"]}"]')).to_be_visible()
    assert {r.get_attribute("data-status") for r in rows.all()} == {"failed"}
    page.get_by_role("link", name="paused", exact=True).click()
    expect(page).to_have_url(re.compile(r"status=paused&status=failed"))
    expect(page.locator(f'tr.run-row[data-id="{site.ids["paused"]}"]')).to_be_visible()
    assert {r.get_attribute("data-status") for r in rows.all()} == {"failed", "paused"}
    shot(page, "list-filtered")

    page.goto(site.base + "/")
    page.get_by_label("Workflow").fill("web_approval")
    page.get_by_label("Error").select_option("false")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"workflow=web_approval"))
    expect(page).not_to_have_url(re.compile(r"trigger="))  # empty fields stay out of the URL
    for name in ("paused", "cancelled"):
        expect(page.locator(f'tr.run-row[data-id="{site.ids[name]}"]')).to_be_visible()
    assert {r.locator("td").nth(2).inner_text() for r in rows.all()} == {"web_approval"}
    assert {r.get_attribute("data-status") for r in rows.all()} <= {
        "paused",
        "cancelled",
        "completed",
    }
    page.goto(site.base + "/?min_cost=-1")
    expect(page.locator(".problem")).to_contain_text("min_cost")

    # keyset paging: two runs a page, "older" until the end, every run seen once
    page.goto(site.base + "/?limit=2")
    seen: list[str] = []
    while True:
        seen += [r.get_attribute("data-id") for r in rows.all()]
        older = page.locator("#older")
        if older.count() == 0:
            break
        older.click()
        expect(page).to_have_url(re.compile(r"cursor="))
    assert len(seen) == len(set(seen))
    assert set(site.ids.values()) <= set(seen)

    page.goto(site.base + "/?live=0")
    expect(page.locator("#live-text")).to_have_text("paused")


def set_visibility(page: Any, state: str) -> None:
    """Make the page believe its tab was hidden or shown (headless tabs are always
    visible)."""
    page.evaluate(
        """state => {
        Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""",
        state,
    )


def test_the_list_polls_only_while_the_tab_is_visible(site: Site, page: Any) -> None:
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/fragments/runs" in r.url else None)
    page.goto(site.base + "/")
    page.wait_for_event("request", lambda r: "/fragments/runs" in r.url, timeout=TIMEOUT_MS)
    set_visibility(page, "hidden")
    seen = len(polls)
    page.wait_for_timeout(6_000)  # more than one poll interval (5 s)
    assert len(polls) == seen, "a hidden tab polled"
    with page.expect_request(lambda r: "/fragments/runs" in r.url, timeout=2_000):
        set_visibility(page, "visible")  # back in view: it polls at once


def test_run_page_of_each_status(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    for status in ("completed", "failed", "paused", "cancelled", "crashed", "queued", "stuck"):
        run_id = site.ids[status]
        page.goto(f"{site.base}/runs/{run_id}")
        shown = "running" if status == "stuck" else status
        expect(page.locator("#run-status").first).to_have_text(shown)
        expect(page).to_have_title(re.compile(rf"^{shown} · "))
        shot(page, f"run-{status}")
    # failed: the error, its block, and a jump to it that opens the block's details
    page.goto(f"{site.base}/runs/{site.ids['failed']}")
    card = page.locator("#card")
    expect(card.locator("#error")).to_contain_text("declined by the bank")
    expect(card.locator("#ending")).to_contain_text("force_failed")
    expect(card.locator("#ending")).to_contain_text("engine")
    expect(card.locator("#where")).to_contain_text("charge")
    page.locator("#detail").get_by_role("button", name="Close details").click()
    expect(page.locator("#detail")).not_to_contain_text("Input")
    page.locator("#jump-error").click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text("charge")
    expect(detail).to_contain_text("insufficient funds")
    expect(detail).to_contain_text("4000-0000-0000-0002")  # its input
    expect(page.locator('#tree [aria-selected="true"]')).to_contain_text("charge")
    shot(page, "run-failed-detail")
    # crashed: who decided, and why
    page.goto(f"{site.base}/runs/{site.ids['crashed']}")
    expect(page.locator("#ending")).to_contain_text("sweeper")
    expect(page.locator("#ending")).to_contain_text("lease expired")
    # stuck: the verdict, amber, with the lease
    page.goto(f"{site.base}/runs/{site.ids['stuck']}")
    expect(page.locator("#verdict.stuck")).to_contain_text("lease expired")
    expect(page.locator("#where")).to_contain_text("worker-7")
    # paused: what it waits for
    page.goto(f"{site.base}/runs/{site.ids['paused']}")
    expect(page.locator("#where")).to_contain_text("Pay 75?")
    page.goto(f"{site.base}/runs/does-not-exist")
    expect(page.locator("h1")).to_have_text("Run not found")


def test_waterfall_of_a_nested_run(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{site.base}/runs/{site.ids['completed']}")
    tree = page.get_by_role("tree")
    items = tree.get_by_role("treeitem")
    # loop inside parallel inside child workflow: the levels nest
    child = items.filter(has_text="bill").first
    expect(child).to_have_attribute("aria-level", "2")
    fan = items.filter(has=page.locator(".name", has_text=re.compile("^fan$")))
    expect(fan).to_have_attribute("aria-level", "3")
    rounds = items.filter(has=page.locator(".name", has_text=re.compile("^rounds$"))).first
    expect(rounds).to_have_attribute("aria-level", "5")
    leaf = items.filter(has=page.locator(".name", has_text=re.compile("^sq$"))).first
    expect(leaf).to_have_attribute("aria-level", "7")
    # 40 iterations: the first and last three, and one row for the rest
    more = items.filter(has_text="more iterations")
    expect(more).to_have_count(1)
    expect(more).to_contain_text("34 more")
    many = items.filter(has=page.locator(".name", has_text=re.compile("^many$")))
    expect(many).to_contain_text("40 iterations")
    shot(page, "waterfall-nested")

    # keyboard: into the tree, down, collapse the child workflow, open a span
    tree.focus()
    page.keyboard.press("j")
    expect(page.locator('[role=treeitem][aria-selected="true"]')).to_contain_text("start")
    page.keyboard.press("j")
    selected = page.locator('[role=treeitem][aria-selected="true"]')
    expect(selected).to_contain_text("bill")
    page.keyboard.press("ArrowLeft")
    expect(selected).to_have_attribute("aria-expanded", "false")
    expect(leaf).to_be_hidden()
    page.keyboard.press("ArrowRight")
    expect(leaf).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_contain_text('"customer": "lin"')
    leaf.click()
    expect(page.locator("#detail")).to_contain_text("Output")
    expect(page).to_have_url(re.compile(r"#span="))
    shot(page, "waterfall-detail")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_contain_text("Select a span")

    page.get_by_role("link", name="Render all").click()
    expect(items.filter(has_text="more iterations")).to_have_count(0)
    expect(
        items.filter(has=page.locator(".name", has_text=re.compile(r"^many #\d+$")))
    ).to_have_count(40)


def test_live_run_updates_without_reload(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(site.base + "/")
    page.evaluate("window.__notReloaded = true")
    proc = site.start_run("slow", '{"seconds": 2.5}')
    try:
        running = page.locator('tr.run-row[data-status="running"]').filter(has_text="web_slow")
        live_row = running.filter(has=page.locator("td.where code", has_text=re.compile("^work$")))
        expect(live_row).to_have_count(1, timeout=TIMEOUT_MS)
        assert page.evaluate("window.__notReloaded") is True
        shot(page, "list-live")
        live_row.locator("a.run-link").click()
        expect(page.locator("#run-status")).to_have_text("running")
        expect(page).to_have_title(re.compile("^running · web_slow"))
        icon = page.locator('link[rel="icon"]')
        expect(icon).to_have_attribute("href", re.compile("2563eb"))  # running blue
        page.evaluate("window.__notReloaded = true")
        works = page.get_by_role("treeitem").filter(
            has=page.locator(".name", has_text=re.compile("^work$"))
        )
        expect(works.first).to_be_visible()
        first_count = works.count()
        shot(page, "run-live")
        expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
        assert works.count() == 4 and first_count < 4
        assert page.evaluate("window.__notReloaded") is True
        expect(page).to_have_title(re.compile("^completed · web_slow"))
        expect(icon).to_have_attribute("href", re.compile("15803d"))  # completed green
        shot(page, "run-live-done")
    finally:
        proc.wait(30)


def test_cancel_and_resume_buttons(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"{site.base}/runs/{site.ids['to_resume']}")
    page.get_by_text("Resume with input…").click()
    page.get_by_label("approved").fill("true")
    page.get_by_label("by").fill("ana")
    shot(page, "resume-form")
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    expect(page.locator("#ending")).to_contain_text("completed")

    proc = site.start_run("slow", '{"seconds": 30}')
    try:
        page.goto(site.base + "/?status=running&workflow=web_slow")
        link = (
            page.locator("tr.run-row")
            .filter(has=page.locator("td.where code", has_text=re.compile("^work$")))
            .locator("a.run-link")
        )
        expect(link).to_be_visible(timeout=TIMEOUT_MS)
        link.click()
        expect(page.locator("#run-status")).to_have_text("running")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel run").click()
        expect(page.locator("#run-status")).to_have_text("cancelled", timeout=20_000)
        expect(page.locator("#ending")).to_contain_text("cancelled")
        expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
        shot(page, "run-cancelled-live")
    finally:
        proc.wait(30)
    # the retry button of an ended run that can be retried is there for an operator
    page.goto(f"{site.base}/runs/{site.ids['failed']}")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    page.goto(f"{site.base}/runs/{site.ids['completed']}")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)


def test_sign_in_with_a_token(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    from flowtrail.api import ServeConfig, create_app
    from flowtrail.api.auth import Tokens
    from flowtrail.settings import Settings

    read = "read-token-" + "r" * 16
    tokens = Tokens.parse([("read", read), ("operator", "operator-token-" + "o" * 16)], "test")
    app = create_app(ServeConfig(settings=Settings(database_url=site.url), tokens=tokens))
    with serve(app) as base:
        page.goto(f"{base}/runs/{site.ids['paused']}")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Token").fill("not-a-valid-token-at-all")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Token").fill(read)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#run-status")).to_have_text("paused")
        # a read token sees everything and steers nothing
        expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
        expect(page.get_by_text("Resume with input…")).to_have_count(0)
        page.goto(base + "/")
        expect(page.locator(f'tr.run-row[data-id="{site.ids["paused"]}"]')).to_be_visible()


def test_retry_opens_the_new_run(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    old = site.ids["to_retry"]
    page.goto(f"{site.base}/runs/{old}")
    page.get_by_role("button", name="Retry").click()
    expect(page).not_to_have_url(re.compile(old))
    lineage = page.locator("#lineage")
    expect(lineage).to_contain_text("Retry of")
    expect(lineage.get_by_role("link", name=old[:12])).to_be_visible()
    expect(page.locator("#lineage dd").first).to_have_text("2")
    expect(page.locator("#run-status")).to_have_text("failed", timeout=20_000)
    shot(page, "run-retried")
    lineage.get_by_role("link", name=old[:12]).click()
    expect(page.locator("#lineage")).to_contain_text("Retried by")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)


def test_a_10000_span_run_is_summarized_and_renders_whole_on_demand(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    t0 = time.perf_counter()
    page.goto(f"{site.base}/runs/{site.ids['huge']}")
    items = page.get_by_role("treeitem")
    expect(items.first).to_be_visible()
    summarized_s = time.perf_counter() - t0
    expect(page.locator("#fall")).to_contain_text("10001 spans")
    iterations = items.filter(has=page.locator(".type", has_text=re.compile("^iteration$")))
    names = {n.strip() for n in iterations.locator(".name").all_inner_texts()}
    shown = {0, 1, 2, *HUGE_FAILED, HUGE_ITERATIONS - 3, HUGE_ITERATIONS - 2, HUGE_ITERATIONS - 1}
    assert names == {f"rows #{i}" for i in shown}
    more = HUGE_ITERATIONS - len(shown)
    expect(items.filter(has_text="more iterations")).to_contain_text(f"{more} more iterations")
    expect(page.locator("#fall")).to_contain_text(f"{more * 3} spans summarized")
    page.keyboard.press("e")  # the deepest failure: a handled one, listed
    expect(page.locator('[role=treeitem][aria-selected="true"]')).to_contain_text("parse")
    expect(page.locator("#detail")).to_contain_text("row 2400 is malformed")
    shot(page, "waterfall-10000")
    page.get_by_role("button", name="Failures only").click()
    visible = [n.strip() for n in items.locator(".name").all_inner_texts()]
    shown_rows = [r for r in items.all() if r.is_visible()]
    assert [r.locator(".name").inner_text() for r in shown_rows] == [
        "web_huge", "rows", "rows #1200", "parse", "rows #2500", "parse",
    ], visible  # fmt: skip
    page.get_by_role("button", name="Failures only").click()
    expect(items.filter(has_text="more iterations")).to_be_visible()

    t0 = time.perf_counter()
    page.get_by_role("link", name="Render all").click()
    expect(page).to_have_url(re.compile(r"all=1"))
    expect(items).to_have_count(10_001)
    render_all_s = time.perf_counter() - t0
    expect(items.filter(has_text="more")).to_have_count(0)
    print(
        f"\n10,001-span run page: summarized {summarized_s:.2f} s, render all {render_all_s:.2f} s"
    )
