"""pydantic's validation errors, reworded for people who write workflow files.

"Extra inputs are not permitted" becomes "unknown field 'retires'; did you mean 'retry'?";
the errors a union gives for each of its members become one line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from flowtrail.model.definition import (
    BLOCK_MODELS,
    BLOCK_TYPES,
    Branch,
    InputSpec,
    LoopBlock,
    ParallelBlock,
    Retry,
    WorkflowDefinition,
)
from flowtrail.model.limits import clip

# What a value must be, by pydantic error type (for a union, joined with "or").
_KINDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def fields_of(model: type[BaseModel]) -> list[str]:
    """A model's field names as a file spells them (``with``, not ``with_``)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def model_at(path: Sequence[str], data: Any) -> type[BaseModel] | None:
    """The model that reads the mapping at ``path`` of the file, if it is one (not a free
    value such as ``vars`` or ``with``)."""
    model: type[BaseModel] = WorkflowDefinition
    node = data
    i = 0
    while i < len(path):
        part = path[i]
        node = node.get(part) if isinstance(node, dict) else None
        if part == "blocks" and model in (WorkflowDefinition, LoopBlock, ParallelBlock):
            i += 1
            node = node.get(path[i]) if isinstance(node, dict) and i < len(path) else None
            kind = node.get("type") if isinstance(node, dict) else None
            found = BLOCK_MODELS.get(kind) if isinstance(kind, str) else None
            if found is None:
                return None
            model = found
        elif part == "retry":
            model = Retry
        elif part == "inputs" and model is WorkflowDefinition:
            i += 1
            node = node.get(path[i]) if isinstance(node, dict) and i < len(path) else None
            model = InputSpec
        elif part == "branches":
            i += 1
            index = path[i] if i < len(path) else ""
            node = node[int(index)] if isinstance(node, list) and index.isdigit() else None
            model = Branch
        else:
            return None
        i += 1
    return model


_TAGS = frozenset({"int", "str", "float", "bool", "none"})


def _strip_union_tags(loc: tuple[str, ...]) -> tuple[str, ...]:
    """pydantic names the union member after the field (``count.int``): drop it."""
    end = len(loc)
    while end > 0 and (
        loc[end - 1] in ("int", "str", "float", "bool", "none") or "[" in loc[end - 1]
    ):
        end -= 1
    return loc[:end]


def reword(errors: list[ErrorDetails], clean: Any, data: Any) -> list[tuple[tuple[str, ...], str]]:
    """``(location, message)`` per problem; ``clean(loc)`` maps pydantic's location to
    the file's path. The errors of one union field become one message."""
    grouped: dict[tuple[str, ...], list[ErrorDetails]] = {}
    for err in errors:
        loc = clean(tuple(str(p) for p in err["loc"]))
        grouped.setdefault(_strip_union_tags(loc), []).append(err)
    out: list[tuple[tuple[str, ...], str]] = []
    for loc, errs in grouped.items():
        kinds = [_KINDS[e["type"]] for e in errs if e["type"] in _KINDS]
        if len(errs) > 1 and len(kinds) == len(errs):
            unique = list(dict.fromkeys(kinds))
            out.append((loc, f"must be {' or '.join(unique)}{_got(errs[0])}"))
            continue
        out.extend((loc, _one(loc, e, data)) for e in errs)
    return out


def _got(err: ErrorDetails) -> str:
    value = err.get("input")
    if isinstance(value, dict | list):
        return f" (got a {'mapping' if isinstance(value, dict) else 'list'})"
    return f" (got {clip(repr(value), 40)})"


def _one(loc: tuple[str, ...], err: ErrorDetails, data: Any) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        model = model_at(loc[:-1], data)
        known = fields_of(model) if model is not None else []
        hint = did_you_mean(name, known)
        listed = f" (known fields: {', '.join(known)})" if known and not hint else ""
        return f"unknown field '{clip(name)}'{hint}{listed}"
    if kind == "missing":
        return f"missing required field '{name}'"
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}{_got(err)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}{_got(err)}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}{_got(err)}"
    if kind == "greater_than":
        return f"must be more than {ctx.get('gt')}{_got(err)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{_got(err)}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "union_tag_invalid":
        return f"unknown block type (known: {', '.join(BLOCK_TYPES)})"
    return str(err["msg"]).removeprefix("Value error, ")
