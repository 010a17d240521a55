"""``agent``: one chat completion from an OpenAI-compatible API, with tokens and cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from flowtrail.engine.blocks.base import BlockResult, BlockServices, Leaf, Values
from flowtrail.engine.blocks.http import request_timeout
from flowtrail.engine.events import Tokens
from flowtrail.errors import BlockError
from flowtrail.model.definition import AgentBlock
from flowtrail.model.graph import Node

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class Agent(Leaf):
    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, AgentBlock)
        return values.render(
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

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        return await _complete(inputs, scope.ex.services, node.spec.timeout)


KIND = Agent()


async def _complete(
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
            timeout=request_timeout(block_timeout),
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
