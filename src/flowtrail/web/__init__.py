"""The web UI: server-rendered pages over the same reads as the HTTP API.

``router`` holds the pages (``/`` the runs list, ``/runs/{id}`` a run) and the HTML
fragments they poll; ``STATIC`` is the folder of their assets, which the app serves at
``/static`` (no CDN, no build step)."""

from __future__ import annotations

from pathlib import Path

from flowtrail.web.pages import router

STATIC = Path(__file__).parent / "static"

__all__ = ["STATIC", "router"]
