"""``http``: one HTTP request, on the run's shared client."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from flowtrail.engine.blocks.base import BlockResult, Leaf, Values
from flowtrail.errors import BlockError
from flowtrail.model.definition import HttpBlock
from flowtrail.model.graph import Node
from flowtrail.otel import http_headers

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun

log = logging.getLogger("flowtrail.engine")

# httpx's own default (5 s) would cut off a slow model or API before the block's
# `timeout:` (enforced by the executor) could; without one, this is the ceiling.
UNBOUNDED_BLOCK_HTTP_TIMEOUT = 300.0


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

    async def close_quietly(self) -> None:
        try:
            await self.aclose()
        except Exception:  # closing idle connections never changes the run's outcome
            log.warning("closing the run's HTTP client failed", exc_info=True)


def request_timeout(block_timeout: float | None) -> float | None:
    """Per request: none when the block has its own ``timeout:`` (the executor enforces
    it), else the ceiling."""
    return None if block_timeout else UNBOUNDED_BLOCK_HTTP_TIMEOUT


class Http(Leaf):
    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, HttpBlock)
        return values.render(
            {
                "method": spec.method,
                "url": spec.url,
                "headers": spec.headers,
                "params": spec.params,
                "json": spec.json_,
                "body": spec.body,
            }
        )

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        spec = node.spec
        assert isinstance(spec, HttpBlock)
        extra: Mapping[str, str] = {}
        if scope.ex.options.trace_context:
            # the span this block is exported as (its id is derived, see flowtrail.otel.ids)
            extra = http_headers(scope.ex.run_id, scope.position, node.id)
        return await _request(
            inputs, scope.ex.services.http, spec.fail_on_status, spec.timeout, extra
        )


KIND = Http()


async def _request(
    inputs: Mapping[str, Any],
    http: HttpClient,
    fail_on_status: bool,
    block_timeout: float | None,
    trace_headers: Mapping[str, str] | None = None,
) -> BlockResult:
    headers = {k: str(v) for k, v in (inputs["headers"] or {}).items()}
    given = {k.lower() for k in headers}
    for name, value in (trace_headers or {}).items():
        if name not in given:  # a header the workflow sets itself wins
            headers[name] = value
    try:
        response = await http.get().request(
            str(inputs["method"]).upper(),
            str(inputs["url"]),
            headers=headers,
            params=inputs["params"] or None,
            json=inputs["json"],
            content=inputs["body"],
            timeout=request_timeout(block_timeout),
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
