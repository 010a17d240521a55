"""A private PostgreSQL server for tests that restart or stop the database: a throwaway
cluster (initdb into a temporary folder, its own port), so that a restart never touches
the shared server other tests use.

Needs the PostgreSQL server binaries and, when run as root, the ``postgres`` system user
(the server refuses to run as root). Without them the fixture skips, or fails when
``FLOWTRAIL_REQUIRE_POSTGRES`` is set (as in CI).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    def __init__(self, bin_dir: Path, folder: Path, as_user: str | None) -> None:
        self.bin = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()
        self.as_user = as_user
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin / tool), *args]
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def _options(self) -> str:
        return f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """A real restart: every connection is cut, the server comes back on the same port."""
        self.stop("fast")
        self.start()


def private_cluster() -> Iterator[PrivateCluster]:
    required = bool(os.environ.get("FLOWTRAIL_REQUIRE_POSTGRES"))
    bin_dir = _bin_dir()
    as_user = "postgres" if os.geteuid() == 0 else None
    problem = None
    if bin_dir is None:
        problem = "no PostgreSQL server binaries (pg_ctl, initdb) found"
    elif as_user and shutil.which("runuser") is None:
        problem = "running as root, and no runuser to start the server as 'postgres'"
    if problem:
        if required:
            pytest.fail(f"a private PostgreSQL server is required: {problem}")
        pytest.skip(problem)
    assert bin_dir is not None
    folder = Path(tempfile.mkdtemp(prefix="flowtrail-pg-"))
    if as_user:
        shutil.chown(folder, as_user)
    cluster = PrivateCluster(bin_dir, folder, as_user)
    try:
        cluster.init()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
