"""One HTTP client per run: ``http`` and ``agent`` blocks (child workflows included) reuse
connections, and the run closes them when it ends. A real server on 127.0.0.1 counts the
TCP connections it accepts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flowtrail.engine.executor import Execution
from flowtrail.model.compile import compile_file
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import eventually


class Counting:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.requests = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so a client can reuse it

            def log_message(self, format: str, *args: Any) -> None:
                return

            def setup(self) -> None:
                super().setup()
                with counter.lock:
                    counter.accepted += 1
                    counter.open += 1

            def finish(self) -> None:
                with counter.lock:
                    counter.open -= 1
                super().finish()

            def _reply(self, body: Any) -> None:
                with counter.lock:
                    counter.requests += 1
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply({"path": self.path})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._reply(
                    {
                        "model": "m",
                        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    }
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.base = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@pytest.fixture
def server() -> Iterator[Counting]:
    running = Counting()
    running.thread.start()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()
        running.thread.join(5)


PARENT = """
name: calls
inputs:
  base: {type: string}
blocks:
  start: {type: start}
  each:
    type: loop
    count: 4
    blocks:
      get: {type: http, url: "{{ start.base }}/item/{{ loop.index }}"}
  ask: {type: agent, model: m, prompt: hello, base_url: "{{ start.base }}/v1"}
  child: {type: workflow, path: child.yaml, with: {base: "{{ start.base }}"}}
connections: [start -> each, each -> ask, ask -> child]
"""

CHILD = """
name: child
inputs:
  base: {type: string}
blocks:
  start: {type: start}
  again: {type: http, url: "{{ start.base }}/child"}
connections: [start -> again]
"""


async def test_a_run_reuses_one_connection_and_closes_it_at_the_end(
    server: Counting, tmp_path: Path
) -> None:
    (tmp_path / "calls.yaml").write_text(PARENT)
    (tmp_path / "child.yaml").write_text(CHILD)
    workflow = compile_file(tmp_path / "calls.yaml")

    result = await Execution(workflow, {"base": server.base}, run_id="http-run").run()

    assert result.status is RunStatus.COMPLETED, result.error
    assert server.requests == 6  # 4 GETs, the agent's POST, the child's GET
    assert server.accepted == 1  # one client, one kept-alive connection (was 6)
    await eventually(lambda: server.open == 0, 5)  # closed when the run ended

    # a second run has its own client: a new connection, closed again
    await Execution(workflow, {"base": server.base}, run_id="http-run-2").run()
    assert server.accepted == 2
    await eventually(lambda: server.open == 0, 5)
