"""``function``: calls a Python function (sync in a worker thread, or async) with ``with:``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Reported, Values
from flowtrail.engine.current import CURRENT, CurrentStep
from flowtrail.errors import BlockError
from flowtrail.model.definition import FunctionBlock
from flowtrail.model.graph import Node
from flowtrail.model.imports import resolve_call

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
            fn, is_async = _function(spec, services.search_path)
            if is_async:
                value = await fn(**inputs)
            else:
                call = functools.partial(contextvars.copy_context().run, fn, **inputs)
                value = await asyncio.get_running_loop().run_in_executor(services.threads, call)
                if inspect.isawaitable(value):
                    value = await value
        except (SystemExit, KeyboardInterrupt) as exc:
            # Raised by the block's own code, these would end the engine (asyncio re-raises
            # them out of the event loop) with no record of where they came from. A real
            # Ctrl-C never arrives this way: the CLI and asyncio.run turn SIGINT into a
            # cancel of the run, and sync blocks run in worker threads signals never reach.
            raise BlockError(f"the function raised {_exit_text(exc)}", node.id) from exc
        finally:
            CURRENT.reset(token)
        if isinstance(value, Reported):
            return BlockResult(
                {"result": value.value}, tokens=value.tokens, model=value.model, cost=value.cost
            )
        return BlockResult({"result": value})


KIND = Function()

_callables: dict[tuple[str, str], tuple[Callable[..., Any], bool]] = {}


def _function(spec: FunctionBlock, search: Any) -> tuple[Callable[..., Any], bool]:
    """The callable and whether it is async, imported once per (target, folder)."""
    key = (spec.call, str(search))
    found = _callables.get(key)
    if found is None:
        fn = resolve_call(spec.call, search)
        found = _callables[key] = (fn, inspect.iscoroutinefunction(fn))
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
