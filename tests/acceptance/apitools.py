"""A real ``flowtrail`` API server for the tests: uvicorn on 127.0.0.1, on a port the OS
picked, in a thread of the test process (or ``flowtrail serve`` as a subprocess)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowtrail.api import ServeConfig, create_app
from flowtrail.api.auth import Tokens
from flowtrail.settings import Settings

READ_TOKEN = "read-token-0123456789abcdef"
OPERATOR_TOKEN = "operator-token-0123456789abcdef"

BLOCKS = """
import asyncio


def greet(name):
    return f"hello {name}"


async def slow(seconds=30):
    await asyncio.sleep(seconds)
    return "woke"


async def ticks(n=3, pause=0.5):
    await asyncio.sleep(pause)
    return n


def explode():
    raise RuntimeError("boom")
"""

WORKFLOWS = {
    "hello": """
        name: hello
        description: Greets someone.
        inputs:
          name: {type: string, description: Who to greet.}
          times: {type: integer, default: 1}
        blocks:
          start: {type: start}
          greet: {type: function, call: "api_blocks:greet", with: {name: "{{ start.name }}"}}
        connections: [start -> greet]
        """,
    "sleepy": """
        name: sleepy
        inputs:
          seconds: {type: number, default: 30}
        blocks:
          start: {type: start}
          nap: {type: function, call: "api_blocks:slow", with: {seconds: "{{ start.seconds }}"}}
        connections: [start -> nap]
        """,
    "steps": """
        name: steps
        blocks:
          start: {type: start}
          each:
            type: loop
            count: 4
            blocks:
              tick: {type: function, call: "api_blocks:ticks", with: {n: "{{ loop.index }}"}}
        connections: [start -> each]
        """,
    "approval": """
        name: approval
        blocks:
          start: {type: start}
          approve: {type: wait, for: input, message: "Approve?"}
          pay: {type: response, output: {approved_by: "{{ approve.input.by }}"}}
        connections: [start -> approve, approve -> pay]
        """,
    "boom": """
        name: boom
        blocks:
          start: {type: start}
          explode: {type: function, call: "api_blocks:explode"}
        connections: [start -> explode]
        """,
}


def write_workflows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "api_blocks.py").write_text(BLOCKS)
    for name, text in WORKFLOWS.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    return folder


def both_tokens() -> Tokens:
    return Tokens.parse([("read", READ_TOKEN), ("operator", OPERATOR_TOKEN)], "test")


class ApiServer:
    """``create_app(config)`` served by uvicorn in a thread; ``client()`` talks to it."""

    def __init__(self, config: ServeConfig) -> None:
        self.app = create_app(config)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="on", ws="none")
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def client(self, token: str | None = OPERATOR_TOKEN, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def config_for(
    db: str, workflows: Path | None = None, *, tokens: Tokens | None = None, **kwargs: Any
) -> ServeConfig:
    settings = Settings.from_env(database_url=db, lease_seconds=5.0)
    return ServeConfig(settings=settings, workflows_dir=workflows, tokens=tokens, **kwargs)


def wait_until(check: Any, timeout: float = 30, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("the condition did not come true in time")


def serve_process(db: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``flowtrail serve --db DB ARGS`` as a user starts it (stdout and stderr together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowtrail", "serve", "--db", db, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def listening_url(proc: subprocess.Popen[str]) -> str:
    """The address a ``serve --port 0`` process says it listens on (read from its log).
    The rest of its log is read on, by a thread, so the server never blocks on a full
    pipe (it logs every request)."""
    stream = proc.stdout
    assert stream is not None
    for line in stream:
        found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            drain = threading.Thread(target=stream.read, daemon=True)
            drain.start()
            _DRAINS[proc.pid] = drain
            return found.group(1)
    raise AssertionError("the server did not say where it listens")


_DRAINS: dict[int, threading.Thread] = {}


def stop_serving(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C the server, as a user would; its exit code."""
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    drain = _DRAINS.pop(proc.pid, None)
    if drain is not None:
        drain.join(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    return code
