"""``flowtrail serve``: the HTTP API and the web UI on uvicorn."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from flowtrail.cli.common import EXIT_INVALID, DbOption, err, fail, guard, settings_for
from flowtrail.errors import SettingsError


def serve(
    db: DbOption = None,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Address to listen on (default 127.0.0.1).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", help="Port (default 8000).")
    ] = 8000,
    workflows: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder of workflow files the API may start runs of (POST "
            "/api/v1/workflows/NAME/runs).",
        ),
    ] = None,
    tokens: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Bearer tokens, one `ROLE TOKEN` per line (roles: read, operator); default "
            "FLOWTRAIL_API_TOKENS (ROLE:TOKEN,...). Needed unless bound to loopback.",
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Serve without tokens even on a non-loopback address."),
    ] = False,
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /openapi.json and /docs) and the web UI."""
    from flowtrail.api.app import create_app, open_database
    from flowtrail.api.config import ServeConfig, check_exposure, load_tokens

    try:
        found = load_tokens(tokens, os.environ)
        check_exposure(host, found, no_auth)
        settings = settings_for(db)
        config = ServeConfig(
            settings=settings, host=host, port=port, workflows_dir=workflows, tokens=found
        )
        app = create_app(config)
    except SettingsError as exc:
        fail(EXIT_INVALID, exc)

    async def check() -> int:
        # The database is opened once here so a bad URL or a schema to upgrade is a clear
        # message and exit code, not a traceback from the server's startup.
        store = await open_database(settings)
        await store.close()
        return 0

    guard(check)
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    auth = "tokens" if found is not None else "no auth"
    where = f"http://{host}:{port}" if port else f"a free port of {host} (uvicorn names it)"
    err.print(f"serving on {where} ({auth}); API docs at /docs", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on")
