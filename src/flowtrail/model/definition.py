"""Pydantic models of the workflow format (YAML or JSON). Names here are the file's names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowtrail.model.limits import MAX_NAME_LENGTH

RESERVED_IDS = frozenset({"loop", "parallel", "vars", "env", "secrets", "run"})


class _Model(BaseModel):
    # NaN and infinities validate nowhere: a run could neither use nor store them.
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False
    )


class Retry(_Model):
    tries: int = Field(3, ge=1, le=100, description="Total attempts, the first included.")
    wait_seconds: float = Field(1.0, ge=0, le=3600, description="Pause between attempts.")


class BlockBase(_Model):
    name: str | None = Field(
        None, max_length=MAX_NAME_LENGTH, description="Display name; defaults to the block id."
    )
    description: str | None = None
    retry: Retry | None = None
    timeout: float | None = Field(None, gt=0, description="Seconds before the block fails.")


class StartBlock(BlockBase):
    type: Literal["start"]


class FunctionBlock(BlockBase):
    type: Literal["function"]
    call: str = Field(description='Import path "package.module:callable", sync or async.')
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class HttpBlock(BlockBase):
    type: Literal["http"]
    method: str = "GET"
    url: str
    headers: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    json_: Any = Field(None, alias="json")
    body: str | None = None
    fail_on_status: bool = Field(True, description="Treat a 4xx/5xx response as a block failure.")


class AgentBlock(BlockBase):
    type: Literal["agent"]
    model: str
    prompt: str
    system: str | None = None
    base_url: str | None = Field(None, description="OpenAI-compatible API root (…/v1).")
    api_key: str | None = Field(None, description='Usually "{{ secrets.OPENAI_API_KEY }}".')
    temperature: float | None = None
    max_tokens: int | None = None


class Branch(_Model):
    id: str
    if_: str | None = Field(None, alias="if")
    else_: bool = Field(False, alias="else")

    @model_validator(mode="after")
    def _one_kind(self) -> Branch:
        if (self.if_ is None) == (not self.else_):
            raise ValueError(f"branch '{self.id}' needs exactly one of `if:` or `else: true`")
        return self


class ConditionBlock(BlockBase):
    type: Literal["condition"]
    branches: list[Branch] = Field(min_length=1)


class RouterBlock(BlockBase):
    type: Literal["router"]
    routes: list[str] = Field(min_length=1)
    pick: str = Field(description="Expression whose value names one route.")


class LoopBlock(BlockBase):
    type: Literal["loop"]
    count: int | str | None = None
    for_each: Any = None
    while_: str | None = Field(None, alias="while")
    do_while: str | None = None
    max_iterations: int = Field(1000, ge=1)
    blocks: dict[str, Block] = Field(default_factory=dict)
    connections: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> LoopBlock:
        kinds = [
            k
            for k, v in (
                ("count", self.count),
                ("for_each", self.for_each),
                ("while", self.while_),
                ("do_while", self.do_while),
            )
            if v is not None
        ]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(
                f"a loop needs exactly one of count, for_each, while, do_while (found {found})"
            )
        return self

    @property
    def kind(self) -> str:
        if self.count is not None:
            return "count"
        if self.for_each is not None:
            return "for_each"
        return "while" if self.while_ is not None else "do_while"


class ParallelBlock(BlockBase):
    type: Literal["parallel"]
    count: int | str | None = None
    collection: Any = None
    max_concurrency: int | None = Field(None, ge=1)
    max_branches: int = Field(1000, ge=1, description="Branch cap, like a loop's max_iterations.")
    blocks: dict[str, Block] = Field(default_factory=dict)
    connections: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> ParallelBlock:
        if (self.count is None) == (self.collection is None):
            raise ValueError("a parallel needs exactly one of count or collection")
        return self


class WaitBlock(BlockBase):
    type: Literal["wait"]
    seconds: float | str | None = None
    for_: Literal["input"] | None = Field(None, alias="for")
    message: str | None = Field(None, description="Shown to whoever resumes the run.")

    @model_validator(mode="after")
    def _one_kind(self) -> WaitBlock:
        if (self.seconds is None) == (self.for_ is None):
            raise ValueError("a wait needs exactly one of `seconds:` or `for: input`")
        return self


class ResponseBlock(BlockBase):
    type: Literal["response"]
    output: Any = None


class WorkflowBlock(BlockBase):
    type: Literal["workflow"]
    path: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


Block = Annotated[
    StartBlock
    | FunctionBlock
    | HttpBlock
    | AgentBlock
    | ConditionBlock
    | RouterBlock
    | LoopBlock
    | ParallelBlock
    | WaitBlock
    | ResponseBlock
    | WorkflowBlock,
    Field(discriminator="type"),
]


BLOCK_MODELS: dict[str, type[BlockBase]] = {
    "start": StartBlock,
    "function": FunctionBlock,
    "http": HttpBlock,
    "agent": AgentBlock,
    "condition": ConditionBlock,
    "router": RouterBlock,
    "loop": LoopBlock,
    "parallel": ParallelBlock,
    "wait": WaitBlock,
    "response": ResponseBlock,
    "workflow": WorkflowBlock,
}
"""The model of each block type, by its ``type:``."""
BLOCK_TYPES = tuple(BLOCK_MODELS)
"""Every ``type:`` a block may have, in the order error messages list them."""


class InputSpec(_Model):
    type: Literal["string", "integer", "number", "boolean", "object", "array", "any"] = "any"
    default: Any = None
    required: bool | None = Field(None, description="Defaults to true when no default is set.")
    description: str | None = None


class Recovery(_Model):
    """Automatic recovery of a queued run that ends ``crashed`` (its worker died, or was
    shut down before the run ended): a retry is queued after ``backoff_seconds``, reusing
    what completed, until the run has had ``attempts`` attempts in all."""

    attempts: int = Field(
        ge=1, le=100, description="Attempts in all, the first included (1: never retried)."
    )
    backoff_seconds: float = Field(
        0.0, ge=0, le=86400, description="Wait before a retry is picked up by a worker."
    )


class WorkflowDefinition(_Model):
    """A whole workflow file."""

    name: str = Field(max_length=MAX_NAME_LENGTH)
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    env: list[str] = Field(
        default_factory=list,
        description="Environment variables the workflow reads as env.NAME; no other is readable.",
    )
    timeout: float | None = Field(None, gt=0, description="Run deadline in seconds.")
    recovery: Recovery | None = Field(
        None, description="Retry a queued run automatically when it ends crashed."
    )
    blocks: dict[str, Block]
    connections: list[str] = Field(default_factory=list)


LoopBlock.model_rebuild()
ParallelBlock.model_rebuild()
WorkflowDefinition.model_rebuild()
