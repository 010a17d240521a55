"""What a function block prints: its stdout, stderr and ``logging`` records, captured per
block (interleaved in the order they happened) and bounded, for the block's span.

One proxy replaces ``sys.stdout`` and ``sys.stderr`` (installed on first use, again if
something replaced it since) and one handler sits on the root logger. Both look up the
block being run in a context variable, so they work for async blocks (the task's
context) and for sync blocks in worker threads (the executor runs them in a copy of the
context). Writes made outside any block go where they always went.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextvars import ContextVar
from typing import Any, TextIO

# Per block: the first and the last half are kept, the middle is dropped and counted.
MAX_LOG_CHARS = 64_000
_HEAD = MAX_LOG_CHARS // 2
_TAIL = MAX_LOG_CHARS - _HEAD


class BlockLog:
    """The bounded text one block wrote. Appended to from the block's thread; read once
    the block has ended."""

    __slots__ = ("_head", "_head_len", "_lock", "_tail", "_tail_len", "dropped")

    def __init__(self) -> None:
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.dropped = 0
        self._lock = threading.Lock()  # a block's own threads may write at once

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            room = _HEAD - self._head_len
            if room > 0:
                self._head.append(text[:room])
                self._head_len += min(room, len(text))
                text = text[room:]
                if not text:
                    return
            self._tail.append(text)
            self._tail_len += len(text)
            if self._tail_len > 2 * _TAIL:  # trim now and then, not on every write
                self._trim()

    def _trim(self) -> None:
        joined = "".join(self._tail)
        cut = len(joined) - _TAIL
        if cut > 0:
            self.dropped += cut
            joined = joined[cut:]
        self._tail, self._tail_len = [joined], len(joined)

    def result(self) -> tuple[str | None, int]:
        """The captured text (``None`` when nothing was written) and how many characters
        were dropped from its middle (marked where they were)."""
        with self._lock:
            self._trim()
            head, tail = "".join(self._head), "".join(self._tail)
            if not head and not tail:
                return None, 0
            if self.dropped:
                return f"{head}\n[… {self.dropped} characters dropped …]\n{tail}", self.dropped
            return head + tail, 0


_current: ContextVar[BlockLog | None] = ContextVar("flowtrail_block_log", default=None)


class _Stream:
    """Stands in for ``sys.stdout``/``sys.stderr``: a block's writes go to its log, all
    others to the stream it replaced."""

    def __init__(self, wrapped: TextIO) -> None:
        self._wrapped = wrapped

    def write(self, text: str) -> int:
        target = _current.get()
        if target is None:
            return self._wrapped.write(text)
        target.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current.get() is None:
            self._wrapped.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer, ...
        return getattr(self._wrapped, name)


class _Handler(logging.Handler):
    """On the root logger: a block's records go to its log. Outside blocks it stays out
    of the way, doing what logging's last resort would if it were not there."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def handle(self, record: logging.LogRecord) -> bool:
        target = _current.get()
        if target is not None and not _own(record.name):
            target.write(self.format(record) + "\n")
            return True
        if not _handled_elsewhere(record, self):
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)
        return False

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        return None


def _own(name: str) -> bool:
    return name == "flowtrail" or name.startswith("flowtrail.")


def _handled_elsewhere(record: logging.LogRecord, me: logging.Handler) -> bool:
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not me for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


_install_lock = threading.Lock()
_handler = _Handler()


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Stream):
            sys.stdout = _Stream(sys.stdout)
        if not isinstance(sys.stderr, _Stream):
            sys.stderr = _Stream(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


def begin() -> tuple[BlockLog, Any]:
    """Start capturing for the block about to run in this context; pass the token to
    ``end``. Sync blocks must be started from a copy of this context (they are)."""
    if not (isinstance(sys.stdout, _Stream) and isinstance(sys.stderr, _Stream)):
        _install()
    log = BlockLog()
    return log, _current.set(log)


def end(token: Any) -> None:
    _current.reset(token)
