"""The request body limit, as a pure ASGI middleware: a ``Content-Length`` over the limit
is answered 413 before anything is read, and a body sent without one (chunked) is counted
as it streams in, so no request makes the server hold more than the limit."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowtrail.api.problems import problem

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the streamed body passes the limit: FastAPI passes an
    ``HTTPException`` through its body parsing, so the problem handler answers it 413."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit or declared < 0:
                    detail = (
                        f"the request body is larger than the limit of {limit} bytes"
                        if declared > limit
                        else "the Content-Length header is not a number"
                    )
                    status, code = (
                        (413, "body_too_large")
                        if declared > limit
                        else (
                            400,
                            "bad_request",
                        )
                    )
                    await problem(status, code, detail).response()(scope, receive, send)
                    return
        seen = 0
        started = False

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, watching)
        except BodyTooLarge as exc:
            if started:
                raise
            await problem(413, exc.code, str(exc.detail)).response()(scope, receive, send)
