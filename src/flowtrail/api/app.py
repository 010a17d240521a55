"""The FastAPI application: ``create_app(config)``.

On startup (the lifespan) it opens the database as every command does (SQLite migrates
itself; a PostgreSQL database must be up to date), ends this host's runs whose process is
gone, and sets ``app.state``: ``config``, ``settings``, ``store`` (the writer), ``readers``
(the reader pool, or None: read through ``store``), ``workflows`` (from ``--workflows``),
``runner`` (starts and resumes runs in this process) and ``handles`` (those runs, by id).
On shutdown the runs still going in this process end ``crashed`` (cause
``server_shutdown``), never left ``running``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from flowtrail.api import problems
from flowtrail.api.config import ServeConfig, load_workflows
from flowtrail.api.limits import BodyLimit
from flowtrail.api.problems import problem
from flowtrail.errors import StoreError
from flowtrail.liveness.sweeper import Sweeper
from flowtrail.runner import RunHandle, Runner
from flowtrail.settings import Settings
from flowtrail.store import SqlStore, open_store
from flowtrail.store.readers import ReaderPool

log = logging.getLogger("flowtrail.api")
READY_TIMEOUT_SECONDS = 5.0
SERVER_SHUTDOWN = "server_shutdown"
SHUTDOWN_GRACE_SECONDS = 10.0
WEB_PACKAGE = Path(__file__).resolve().parent.parent / "web"


def _version() -> str:
    try:
        return package_version("flowtrail")
    except PackageNotFoundError:
        return "unknown"


async def open_database(settings: Settings) -> SqlStore:
    """Open and check the database as the commands do: an embedded SQLite file migrates
    itself, a shared PostgreSQL database is migrated on purpose (``flowtrail db upgrade``);
    never creates a SQLite file. Then this host's runs whose process is gone end crashed."""
    store = open_store(settings.database_url, create=False)
    await store.open()
    try:
        if store.backend == "sqlite":
            await store.migrate()
        elif pending := await store.pending_migrations():
            raise StoreError(
                f"the database schema is not up to date ({len(pending)} migration(s) pending: "
                f"{', '.join(pending)}); run `flowtrail db upgrade`"
            )
        try:
            await Sweeper(store, settings).reap_here()
        except StoreError as exc:
            log.warning("could not check for runs whose process is gone: %s", exc)
    except BaseException:
        await store.close()
        raise
    return store


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    config: ServeConfig = app.state.config
    store = await open_database(config.settings)
    app.state.store = store
    app.state.readers = await _open_readers(config)
    app.state.runner = Runner(config.settings, store)
    handles: dict[str, RunHandle] = {}
    app.state.handles = handles
    try:
        yield
    finally:
        await _stop_runs(handles)
        if app.state.readers is not None:
            await app.state.readers.close()
        await store.close()


async def _open_readers(config: ServeConfig) -> ReaderPool | None:
    """The readers the routes read through, so reads never wait for the runs' writes;
    without them (a SQLite file that cannot be in WAL mode) reads go through the writer."""
    pool = ReaderPool(config.settings.database_url, size=config.readers)
    try:
        await pool.open()
    except StoreError as exc:
        log.warning("reading through the writer's connection: %s", exc)
        return None
    return pool


async def _stop_runs(handles: dict[str, RunHandle]) -> None:
    going = [h for h in handles.values() if not h.task.done()]
    for handle in going:
        log.warning("run %s is still going: it ends crashed (%s)", handle.run_id, SERVER_SHUTDOWN)
        handle.shut_down(SERVER_SHUTDOWN)
    if going:
        await asyncio.wait([h.task for h in going], timeout=SHUTDOWN_GRACE_SECONDS)


SWAGGER_PREFIX = "/docs-assets"
SWAGGER_ASSETS = Path(__file__).parent / "swagger"
"""Swagger UI (swagger-ui-dist, Apache-2.0), vendored so ``/docs`` works offline."""


def create_app(config: ServeConfig) -> FastAPI:
    """The app for ``config``. Raises ``SettingsError`` when the workflows folder does not
    load (before anything is served)."""
    app = FastAPI(
        title="flowtrail",
        version=_version(),
        summary="Runs of flowtrail workflows: list, inspect, steer and start them.",
        lifespan=_lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served below with the package's own Swagger UI assets (no CDN)
        redoc_url=None,
    )
    app.state.config = config
    app.state.settings = config.settings
    app.state.tokens = config.tokens
    app.state.workflows = load_workflows(config.workflows_dir) if config.workflows_dir else {}
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database answers",
        responses=problems.responses(503),
    )
    async def readyz(request: Request) -> dict[str, Any]:
        store: SqlStore = request.app.state.store
        try:
            version = await asyncio.wait_for(store.schema_version(), READY_TIMEOUT_SECONDS)
        except (StoreError, TimeoutError) as exc:
            raise problem(
                503, "store_unavailable", f"the database does not answer: {exc or 'timeout'}"
            ) from None
        return {"status": "ready", "backend": store.backend, "schema_version": version}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="flowtrail API",
            swagger_js_url=f"{SWAGGER_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_PREFIX}/favicon-32x32.png",
        )

    app.mount(SWAGGER_PREFIX, StaticFiles(directory=SWAGGER_ASSETS), name="swagger")

    from flowtrail.api.routes import router

    app.include_router(router)
    _mount_web(app)
    return app


def _mount_web(app: FastAPI) -> None:
    """The web UI (``flowtrail.web``) at ``/`` and its assets at ``/static``, when the
    package has them."""
    if importlib.util.find_spec("flowtrail.web") is not None:
        # by name: the web package is optional here (another part of the tree owns it)
        web = importlib.import_module("flowtrail.web")
        app.include_router(web.router)
    static = WEB_PACKAGE / "static"
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")
