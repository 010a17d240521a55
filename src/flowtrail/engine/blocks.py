"""What each block type does: resolve its inputs (never retried), then run (retried)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import httpx

from flowtrail.engine.events import Tokens
from flowtrail.errors import BlockError
from flowtrail.model.compile import resolve_call
from flowtrail.model.definition import (
    AgentBlock,
    ConditionBlock,
    FunctionBlock,
    HttpBlock,
    ResponseBlock,
    RouterBlock,
    WaitBlock,
    WorkflowBlock,
)
from flowtrail.model.graph import Node


@dataclass(frozen=True, slots=True)
class Reported:
    """Return this from a function block to report cost, tokens or a model with its value."""

    value: Any
    cost: float | None = None
    tokens: Tokens | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class BlockResult:
    output: Any
    handle: str | None = None  # the branch or route taken
    tokens: Tokens | None = None
    model: str | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Prices:
    """USD per 1,000 tokens, by model name."""

    table: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def cost(self, model: str, tokens: Tokens) -> float | None:
        price = self.table.get(model)
        if price is None:
            return None
        return (tokens.prompt * price[0] + tokens.completion * price[1]) / 1000


class PauseRequested(Exception):
    """Raised by a ``wait for: input`` block: the run checkpoints and stops."""


Render = Callable[[Any], Any]


class HttpClient:
    """One ``httpx.AsyncClient`` per run (child workflows included), made when the first
    ``http``/``agent`` block needs it and closed when the run ends: connections to the same
    host are reused from block to block."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=UNBOUNDED_BLOCK_HTTP_TIMEOUT)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


@dataclass
class BlockServices:
    """Run-wide things block handlers use. Built once per run by the executor."""

    http: HttpClient
    prices: Prices
    agent_base_url: str | None
    agent_api_key: str | None
    search_path: Any
    threads: Executor | None = None  # sync function blocks; None = the loop's default
    resume_input: Any = None


def prepare(node: Node, render: Render, evaluate: Render) -> Any:
    """Resolve a block's inputs from templates and expressions (not retried)."""
    spec = node.spec
    if isinstance(spec, FunctionBlock | WorkflowBlock):
        return render(spec.with_)
    if isinstance(spec, HttpBlock):
        return render(
            {
                "method": spec.method,
                "url": spec.url,
                "headers": spec.headers,
                "params": spec.params,
                "json": spec.json_,
                "body": spec.body,
            }
        )
    if isinstance(spec, AgentBlock):
        return render(
            {
                "model": spec.model,
                "system": spec.system,
                "prompt": spec.prompt,
                "base_url": spec.base_url,
                "api_key": spec.api_key,
                "temperature": spec.temperature,
                "max_tokens": spec.max_tokens,
            }
        )
    if isinstance(spec, ResponseBlock):
        return render(spec.output)
    if isinstance(spec, ConditionBlock):
        for branch in spec.branches:
            if branch.else_ or evaluate(branch.if_):
                return {"branch": branch.id}
        return {"branch": None}
    if isinstance(spec, RouterBlock):
        picked = evaluate(spec.pick)
        if picked not in spec.routes:
            raise BlockError(
                f"router picked {picked!r}, which is not one of its routes: "
                f"{', '.join(spec.routes)}",
                node.id,
            )
        return {"route": picked}
    if isinstance(spec, WaitBlock):
        return {"seconds": render(spec.seconds), "message": render(spec.message), "for": spec.for_}
    return None


_callables: dict[tuple[str, str], tuple[Callable[..., Any], bool]] = {}


def _function(spec: FunctionBlock, search: Any) -> tuple[Callable[..., Any], bool]:
    """The callable and whether it is async, imported once per (target, folder)."""
    key = (spec.call, str(search))
    found = _callables.get(key)
    if found is None:
        fn = resolve_call(spec.call, search)
        found = _callables[key] = (fn, inspect.iscoroutinefunction(fn))
    return found


async def execute(node: Node, inputs: Any, services: BlockServices) -> BlockResult:
    spec = node.spec
    if isinstance(spec, FunctionBlock):
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
        if isinstance(value, Reported):
            return BlockResult(
                {"result": value.value}, tokens=value.tokens, model=value.model, cost=value.cost
            )
        return BlockResult({"result": value})
    if isinstance(spec, HttpBlock):
        return await _http(inputs, services, spec.fail_on_status, spec.timeout)
    if isinstance(spec, AgentBlock):
        return await _agent(inputs, services, spec.timeout)
    if isinstance(spec, ConditionBlock):
        return BlockResult(inputs, handle=inputs["branch"])
    if isinstance(spec, RouterBlock):
        return BlockResult(inputs, handle=inputs["route"])
    if isinstance(spec, WaitBlock):
        if spec.for_ == "input":
            raise PauseRequested(node.id)
        seconds = float(inputs["seconds"])
        await asyncio.sleep(seconds)
        return BlockResult({"waited_seconds": seconds})
    if isinstance(spec, ResponseBlock):
        return BlockResult(inputs)
    return BlockResult(dict(inputs) if isinstance(inputs, Mapping) else {})


def _exit_text(exc: SystemExit | KeyboardInterrupt) -> str:
    """``SystemExit(3)``, ``KeyboardInterrupt('why')``: what was raised, as written."""
    detail = repr(exc.code) if isinstance(exc, SystemExit) else ", ".join(map(repr, exc.args))
    return f"{type(exc).__name__}({detail}); a block cannot end the process"


# httpx's own default (5 s) would cut off a slow model or API before the block's
# `timeout:` (enforced by the executor) could; without one, this is the ceiling.
UNBOUNDED_BLOCK_HTTP_TIMEOUT = 300.0


def _timeout(block_timeout: float | None) -> float | None:
    """Per request: none when the block has its own ``timeout:`` (the executor enforces
    it), else the ceiling."""
    return None if block_timeout else UNBOUNDED_BLOCK_HTTP_TIMEOUT


async def _http(
    inputs: Mapping[str, Any],
    services: BlockServices,
    fail_on_status: bool,
    block_timeout: float | None,
) -> BlockResult:
    try:
        response = await services.http.get().request(
            str(inputs["method"]).upper(),
            str(inputs["url"]),
            headers={k: str(v) for k, v in (inputs["headers"] or {}).items()},
            params=inputs["params"] or None,
            json=inputs["json"],
            content=inputs["body"],
            timeout=_timeout(block_timeout),
        )
    except httpx.HTTPError as exc:
        raise BlockError(f"HTTP request to {inputs['url']} failed: {exc!r}") from exc
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    output = {"status": response.status_code, "headers": dict(response.headers), "body": body}
    if fail_on_status and response.status_code >= 400:
        raise BlockError(f"HTTP {response.status_code} from {inputs['url']}")
    return BlockResult(output)


async def _agent(
    inputs: Mapping[str, Any], services: BlockServices, block_timeout: float | None
) -> BlockResult:
    base_url = inputs.get("base_url") or services.agent_base_url
    if not base_url:
        raise BlockError(
            "agent block has no base_url (set it on the block or FLOWTRAIL_AGENT_BASE_URL)"
        )
    api_key = inputs.get("api_key") or services.agent_api_key
    messages = []
    if inputs.get("system"):
        messages.append({"role": "system", "content": str(inputs["system"])})
    messages.append({"role": "user", "content": str(inputs["prompt"])})
    payload: dict[str, Any] = {"model": inputs["model"], "messages": messages}
    for key in ("temperature", "max_tokens"):
        if inputs.get(key) is not None:
            payload[key] = inputs[key]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await services.http.get().post(
            f"{str(base_url).rstrip('/')}/chat/completions",
            json=payload,
            headers=headers,
            timeout=_timeout(block_timeout),
        )
    except httpx.HTTPError as exc:
        raise BlockError(f"agent request to {base_url} failed: {exc!r}") from exc
    if response.status_code >= 400:
        raise BlockError(
            f"agent request failed with HTTP {response.status_code}: {response.text[:500]}"
        )
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BlockError(f"agent response is not an OpenAI chat completion: {exc!r}") from exc
    usage = data.get("usage") or {}
    tokens = Tokens(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
    model = str(data.get("model") or inputs["model"])
    cost = services.prices.cost(model, tokens)
    if cost is None:
        cost = services.prices.cost(str(inputs["model"]), tokens)
    output = {
        "content": content,
        "model": model,
        "tokens": {"prompt": tokens.prompt, "completion": tokens.completion, "total": tokens.total},
    }
    return BlockResult(output, tokens=tokens, model=model, cost=cost)
