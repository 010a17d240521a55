"""The http and agent blocks against real HTTP servers started by the test (stdlib
``http.server`` on 127.0.0.1, an ephemeral port, in a thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from flowtrail.engine.blocks import Prices
from flowtrail.engine.events import Tokens
from flowtrail.engine.executor import RunOptions
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import run_workflow


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]  # set per server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain"
        )
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.seen.append({"method": "GET", "path": url.path, "headers": dict(self.headers)})
        if url.path == "/data":
            self._send(
                200,
                {
                    "items": ["x", "y", "z"],
                    "query": parse_qs(url.query),
                    "token": self.headers.get("X-Token"),
                },
                {"X-Served-By": "local-test-server"},
            )
        elif url.path == "/broken":
            self._send(500, b"internal failure")
        else:
            self._send(404, b"not found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"null")
        self.seen.append(
            {"method": "POST", "path": url.path, "headers": dict(self.headers), "json": payload}
        )
        if url.path != "/v1/chat/completions":
            self._send(404, b"not found")
            return
        prompt = payload["messages"][-1]["content"]
        self._send(
            200,
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": f"echo: {prompt}"},
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            },
        )


class LocalServer:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        handler = type("Handler", (_Handler,), {"seen": self.seen})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.base = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


async def test_http_block_returns_status_body_and_headers(server: LocalServer) -> None:
    result, log = await run_workflow(
        "http_call.yaml", {"base": server.base, "path": "/data", "token": "s3cret-token"}
    )

    assert result.status is RunStatus.COMPLETED
    fetch = log.one_completed("fetch")
    assert fetch.success is True
    assert fetch.output["status"] == 200
    assert fetch.output["headers"]["x-served-by"] == "local-test-server"
    assert fetch.output["headers"]["content-type"] == "application/json"
    # The server saw the templated header and query parameter, and echoed them back.
    assert fetch.output["body"] == {
        "items": ["x", "y", "z"],
        "query": {"q": ["search me"]},
        "token": "s3cret-token",
    }
    assert [r["path"] for r in server.seen] == ["/data"]
    # The next block reads the response through references.
    assert result.output == {"result": {"status": 200, "second": "y"}}


async def test_http_500_fails_the_block(server: LocalServer) -> None:
    result, log = await run_workflow("http_call.yaml", {"base": server.base, "path": "/broken"})

    assert result.status is RunStatus.FAILED
    assert result.error_block_id == "fetch"
    assert result.error == f"HTTP 500 from {server.base}/broken"
    assert log.one_completed("fetch").success is False
    assert log.started("summarise") == []
    assert [r["path"] for r in server.seen] == ["/broken"]


async def test_agent_block_records_content_tokens_model_and_cost(server: LocalServer) -> None:
    options = RunOptions(
        agent_base_url=f"{server.base}/v1",
        prices=Prices({"fake-model": (0.5, 1.5)}),
        secrets={"LLM_KEY": "sk-test-key"},
    )
    result, log = await run_workflow("agent_call.yaml", {"topic": "rivers"}, options=options)

    assert result.status is RunStatus.COMPLETED
    expected = {
        "content": "echo: Say something about rivers",
        "model": "fake-model",
        "tokens": {"prompt": 120, "completion": 30, "total": 150},
    }
    assert result.output == expected
    ask = log.one_completed("ask")
    assert ask.output == expected
    assert ask.tokens == Tokens(120, 30)
    assert ask.model == "fake-model"
    # (120 * 0.5 + 30 * 1.5) / 1000 USD
    assert ask.cost == pytest.approx(0.105)
    # What the server received: an OpenAI-style request with the secret as bearer token.
    (request,) = server.seen
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-key"
    assert request["json"] == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say something about rivers"},
        ],
        "temperature": 0,
    }


async def test_agent_block_without_a_price_has_no_cost(server: LocalServer) -> None:
    result, log = await run_workflow(
        "agent_call.yaml",
        {"topic": "lakes"},
        options=RunOptions(
            agent_base_url=f"{server.base}/v1",
            prices=Prices({"another-model": (1.0, 1.0)}),
            secrets={"LLM_KEY": "k"},
        ),
    )

    assert result.status is RunStatus.COMPLETED
    ask = log.one_completed("ask")
    assert ask.tokens == Tokens(120, 30)
    assert ask.model == "fake-model"
    assert ask.cost is None
