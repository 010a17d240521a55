"""The HTTP API reference lists every path the server publishes in its OpenAPI, with the
methods it has, and every problem code the routes declare is in its table."""

from __future__ import annotations

import re
from pathlib import Path

from flowtrail.api import ServeConfig, create_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "http-api.md"


def test_every_published_operation_is_documented() -> None:
    spec = create_app(ServeConfig()).openapi()
    text = DOC.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`", text, re.MULTILINE))
    published = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if path not in ("/openapi.json", "/docs")
    }
    assert published - listed == set(), "published but not in docs/reference/http-api.md"
    assert listed - published == set(), "in docs/reference/http-api.md but not published"


def test_every_operation_declares_its_problems_as_problem_json() -> None:
    spec = create_app(ServeConfig()).openapi()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert "application/problem+json" in response.get("content", {}), (
                        method,
                        path,
                        status,
                    )
