"""Errors as ``application/problem+json`` (RFC 9457): ``{type, title, status, detail, code}``.

Every error the API answers goes through here: a :class:`Problem` raised by a route, a
flowtrail error (mapped by :func:`from_error`), FastAPI's request validation (422
``invalid_request``, or 400 ``invalid_json`` for a body that is not JSON) and Starlette's
HTTP errors (404 for an unknown path, 405, 413 from the body limit). ``code`` is the
machine-readable part; ``detail`` says what is wrong in words.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowtrail.errors import (
    AmbiguousRunIdError,
    FlowtrailError,
    InputError,
    QueueError,
    RunNotFoundError,
    RunStateError,
    StoreError,
    WorkflowError,
)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:flowtrail:problem:"
log = logging.getLogger("flowtrail.api")


class Problem(Exception):
    """An error answered as problem+json. ``headers`` go on the response (401's
    ``WWW-Authenticate``); ``extra`` adds members to the body (``errors`` of a 422)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(
            self.body(), status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers
        )


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "urn:flowtrail:problem:CODE"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What is wrong, in words."},
        "code": {"type": "string", "description": "What is wrong, for a program."},
        "errors": {
            "type": "array",
            "description": "422 invalid_request: one entry per field that does not fit.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
"""The problem+json body, as OpenAPI publishes it (``components.schemas.Problem``)."""
PROBLEM_REF = "#/components/schemas/Problem"


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def problem(status: int, code: str, detail: str, **kwargs: Any) -> Problem:
    return Problem(status, code, _TITLES.get(status, "Error"), detail, **kwargs)


def from_error(exc: FlowtrailError) -> Problem:
    """The problem a flowtrail error is: its ``code`` kept, a status by its kind."""
    status = 400
    if isinstance(exc, RunNotFoundError):
        status = 404
    elif isinstance(exc, AmbiguousRunIdError):
        status = 409
    elif exc.code == "bad_cursor":
        status = 400
    elif isinstance(exc, InputError | WorkflowError):
        status = 422
    elif isinstance(exc, RunStateError | QueueError):
        status = 409
    elif isinstance(exc, StoreError):
        return problem(503, "store_unavailable", f"the database could not be used: {exc}")
    return problem(status, exc.code, str(exc))


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring these statuses as problem+json."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
        }
        for status in statuses
    }


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return exc.response()


async def _on_flowtrail_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlowtrailError)
    return from_error(exc).response()


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        why = (first.get("ctx") or {}).get("error", "malformed JSON")
        return problem(400, "invalid_json", f"the request body is not valid JSON: {why}").response()
    shown = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['message']}" for e in shown)
    return problem(422, "invalid_request", detail, extra={"errors": shown}).response()


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = getattr(exc, "code", None) or _CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such path: {request.url.path}"
    return problem(exc.status_code, code, detail, headers=exc.headers).response()


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal_error", "the server failed to answer this request").response()


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json, and publish the body's schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(FlowtrailError, _on_flowtrail_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_crash)
