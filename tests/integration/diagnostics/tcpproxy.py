"""A TCP proxy for causing real database outages: flowtrail connects through it, and
``cut(seconds)`` drops every connection and refuses new ones for that long."""

from __future__ import annotations

import asyncio
from contextlib import suppress


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.target_port = host, port
        self.port = 0
        self.cuts = 0
        self._down = False
        self._restored = asyncio.Event()
        self._restored.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()

    def cut(self, seconds: float) -> None:
        """Like the server going away: open connections are reset, new ones refused."""
        self.cuts += 1
        self._down = True
        self._restored.clear()
        self._drop_all()
        asyncio.get_running_loop().call_later(seconds, self._restore)

    async def wait_restored(self) -> None:
        await self._restored.wait()

    def _restore(self) -> None:
        self._down = False
        self._restored.set()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            with suppress(Exception):
                writer.transport.abort()
