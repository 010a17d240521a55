"""Drive the ``flowtrail`` command as a user would: a real subprocess per call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCKS = """
import asyncio
import time


def quick(x=1):
    return x


async def slow(seconds=30):
    await asyncio.sleep(seconds)
    return "woke"


def blocking(seconds=30):
    time.sleep(seconds)
    return "woke"
"""


class Cli:
    """Runs ``python -m flowtrail`` against one database."""

    def __init__(self, db: str, cwd: Path) -> None:
        self.db = db
        self.cwd = cwd
        self.env = {**os.environ, "FLOWTRAIL_DATABASE_URL": db, "PYTHONUNBUFFERED": "1"}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flowtrail", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )

    def show(self, run_id: str) -> dict[str, Any]:
        result = self.run("show", run_id, "--json")
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def runs(self, *args: str) -> list[dict[str, Any]]:
        result = self.run("runs", "--json", *args)
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows

    def wait_for(
        self,
        predicate: Callable[[list[dict[str, Any]]], dict[str, Any] | None],
        workflow: str,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Poll ``runs --json`` until a run of ``workflow`` satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.runs("--workflow", workflow))
            if found is not None:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no run of {workflow} reached the expected state")


def write_workflow(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def started(block_id: str) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    def check(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        for row in rows:
            marker = row["last_started_block"]
            if marker and marker["block_id"] == block_id:
                return row
        return None

    return check


def run_in_pty(cli: Cli, *args: str, columns: int = 100, timeout: float = 60) -> tuple[int, str]:
    """Run the command with stdout and stderr on a real terminal (a pty of ``columns``
    columns); return its exit code and everything it drew, escape sequences included."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in cli.env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        cli.argv(*args), cwd=cli.cwd, env=env, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed its side
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")
