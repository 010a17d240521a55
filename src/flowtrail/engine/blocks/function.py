"""``function``: calls a Python function (sync in a worker thread, or on the loop's thread once
it has proven quick; or async) with ``with:``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Reported, Values
from flowtrail.engine.current import CURRENT, CurrentStep
from flowtrail.errors import BlockError
from flowtrail.model.definition import FunctionBlock
from flowtrail.model.graph import Node
from flowtrail.model.imports import resolve_call

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Function(Leaf):
    captures_output = True

    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, FunctionBlock)
        return values.render(spec.with_)

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        spec = node.spec
        assert isinstance(spec, FunctionBlock)
        ex = scope.ex
        services = ex.services
        token = CURRENT.set(
            CurrentStep(ex.run_id, node.id, scope.position, ex.attempt, ex.first_run_id)
        )
        try:
            target = _function(spec, services.search_path)
            fn = target.fn
            if target.is_async:
                value = await fn(**inputs)
            else:
                limit = services.inline_sync_seconds
                if target.proven >= _PROVEN and spec.timeout is None and limit > 0:
                    value = target.inline(inputs, limit)
                else:
                    call = functools.partial(target.timed, contextvars.copy_context(), inputs)
                    loop = asyncio.get_running_loop()
                    value, took = await loop.run_in_executor(services.threads, call)
                    target.judge(took, limit)
                if inspect.isawaitable(value):
                    value = await value
        except (SystemExit, KeyboardInterrupt) as exc:
            # Raised by the block's own code, these would end the engine (asyncio re-raises
            # them out of the event loop) with no record of where they came from. A real
            # Ctrl-C never arrives this way: the CLI and asyncio.run turn SIGINT into a
            # cancel of the run, and sync blocks run in worker threads signals never reach
            # (or, once proven quick, on the loop's thread, whose signal handlers only
            # note the signal for the loop).
            raise BlockError(f"the function raised {_exit_text(exc)}", node.id) from exc
        finally:
            CURRENT.reset(token)
        if isinstance(value, Reported):
            return BlockResult(
                {"result": value.value}, tokens=value.tokens, model=value.model, cost=value.cost
            )
        return BlockResult({"result": value})


KIND = Function()

_PROVEN = 3
"""Calls in a row that must each take less than ``inline_sync_seconds`` in a worker
thread before a sync function runs on the event loop's thread."""


class _Target:
    """A block's callable, and how its calls have gone in this process.

    A sync function runs in a worker thread until it has proven quick (``_PROVEN`` calls
    in a row under ``inline_sync_seconds``); from then on it runs on the event loop's own
    thread, which saves the two thread hand-offs (the larger part of a trivial block's
    cost). One call that takes longer sends it back to worker threads for good, so the
    loop (heartbeats, signals, cancels, timers, other branches) is held up at most once,
    by one call. Blocks with a ``timeout:`` always take a thread, so the timer can fire
    while the call still runs. Only the event loop's thread changes these counters."""

    __slots__ = ("fn", "is_async", "proven")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.proven = 0  # quick calls in a row; -1: it was slow once, threads for good

    def timed(self, context: contextvars.Context, inputs: dict[str, Any]) -> tuple[Any, float]:
        """In the worker thread: the call's value and how long it took."""
        began = time.perf_counter()
        value = context.run(self.fn, **inputs)
        return value, time.perf_counter() - began

    def judge(self, took: float, limit: float) -> None:
        if self.proven >= 0:
            self.proven = self.proven + 1 if took < limit else 0

    def inline(self, inputs: dict[str, Any], limit: float) -> Any:
        began = time.perf_counter()
        try:
            return contextvars.copy_context().run(self.fn, **inputs)
        finally:
            if time.perf_counter() - began >= limit:
                self.proven = -1
                log.info(
                    "%s took longer than %gs on the event loop's thread; its calls go to "
                    "worker threads from now on",
                    getattr(self.fn, "__qualname__", self.fn),
                    limit,
                )


_callables: dict[tuple[str, str], _Target] = {}


def _function(spec: FunctionBlock, search: Any) -> _Target:
    """The callable and how its calls have gone, imported once per (target, folder)."""
    key = (spec.call, str(search))
    found = _callables.get(key)
    if found is None:
        found = _callables[key] = _Target(resolve_call(spec.call, search))
    return found


def _exit_text(exc: SystemExit | KeyboardInterrupt) -> str:
    """``SystemExit(3)``, ``KeyboardInterrupt('why')``: what was raised, as written."""
    detail = repr(exc.code) if isinstance(exc, SystemExit) else ", ".join(map(repr, exc.args))
    return f"{type(exc).__name__}({detail}); a block cannot end the process"


_POOLS: dict[int, ThreadPoolExecutor] = {}


def shared_threads(size: int) -> ThreadPoolExecutor:
    """Long-lived threads for sync function blocks, shared by runs of the same
    concurrency. Not the event loop's default executor, so a block abandoned by a cancel
    never holds up ``asyncio.run``'s shutdown."""
    pool = _POOLS.get(size)
    if pool is None:
        pool = _POOLS[size] = ThreadPoolExecutor(size, thread_name_prefix="flowtrail-block")
    return pool
