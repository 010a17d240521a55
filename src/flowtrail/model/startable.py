"""Checks that a valid workflow can also start: what a function accepts, what a child
workflow takes, a constant count against its cap, and what a ``while`` condition reads
before the loop's first iteration. Pure helpers for the compiler.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Collection, Iterable
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from flowtrail.model.definition import LoopBlock, ParallelBlock, WorkflowBlock
from flowtrail.model.expressions import ENV
from flowtrail.model.graph import Workflow
from flowtrail.model.limits import clip
from flowtrail.model.messages import did_you_mean


def _parameters(fn: Callable[..., Any]) -> tuple[inspect.Parameter, ...] | None:
    """``fn``'s parameters, read once per function (a signature takes ~20 µs to build)."""
    try:
        return _signatures[fn]
    except (KeyError, TypeError):  # TypeError: not hashable, or not weakly referable
        pass
    try:
        params: tuple[inspect.Parameter, ...] | None = tuple(
            inspect.signature(fn).parameters.values()
        )
    except (TypeError, ValueError):
        params = None
    with contextlib.suppress(TypeError):
        _signatures[fn] = params
    return params


_signatures: weakref.WeakKeyDictionary[Callable[..., Any], tuple[inspect.Parameter, ...] | None]
_signatures = weakref.WeakKeyDictionary()


def argument_problems(fn: Callable[..., Any], given: Iterable[str]) -> list[str]:
    """What stops ``fn(**with_)`` from being called: a ``with:`` key it does not take
    (unless it takes ``**kwargs``), or a required argument ``with:`` does not give."""
    params = _parameters(fn)
    if params is None:
        return []  # some builtins have no signature: the call will tell
    by_keyword = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    keys = [str(k) for k in given]
    problems: list[str] = []
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        takes = ", ".join(by_keyword) or "no arguments"
        for key in keys:
            if key not in by_keyword:
                problems.append(
                    f"`with: {clip(key)}` is not an argument of the function (it takes: "
                    f"{takes}){did_you_mean(key, by_keyword)}"
                )
    for p in params:
        needed = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        if needed and (p.kind is p.POSITIONAL_ONLY or p.name not in keys):
            problems.append(
                f"the function needs argument '{p.name}', which `with:` does not give"
                if p.kind is not p.POSITIONAL_ONLY
                else f"the function needs positional-only argument '{p.name}', which a "
                "function block cannot give (it passes `with:` by name)"
            )
    return problems


def _known(node: nodes.Node) -> bool | None:
    """The value of ``node`` before the first iteration, where it is a test of
    ``loop.index`` or ``loop.first``; ``None`` when that is not known statically."""
    if isinstance(node, nodes.Not):
        inner = _known(node.node)
        return None if inner is None else not inner
    if isinstance(node, nodes.Getattr) and _is_loop(node.node) and node.attr == "first":
        return True
    if (
        isinstance(node, nodes.Compare)
        and len(node.ops) == 1
        and isinstance(node.expr, nodes.Getattr)
        and _is_loop(node.expr.node)
        and node.expr.attr == "index"
        and isinstance(node.ops[0].expr, nodes.Const)
        and isinstance(node.ops[0].expr.value, int)
    ):
        value = node.ops[0].expr.value
        tests: dict[str, Callable[[int], bool]] = {
            "eq": lambda v: v == 0,
            "ne": lambda v: v != 0,
            "lt": lambda v: v > 0,
            "lteq": lambda v: v >= 0,
            "gt": lambda v: v < 0,
            "gteq": lambda v: v <= 0,
        }
        test = tests.get(node.ops[0].op)
        return None if test is None else test(value)
    return None


def _is_loop(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "loop"


def _reads(node: nodes.Node, out: set[str]) -> None:
    """Names read when ``node`` is evaluated before the first iteration, skipping the
    side of ``or``/``and``/``if`` that a ``loop.index`` test rules out."""
    if isinstance(node, nodes.Or | nodes.And):
        first = _known(node.left)
        _reads(node.left, out)
        short = first is True if isinstance(node, nodes.Or) else first is False
        if not short:
            _reads(node.right, out)
        return
    if isinstance(node, nodes.CondExpr):
        test = _known(node.test)
        _reads(node.test, out)
        if test is not False:
            _reads(node.expr1, out)
        if test is not True and node.expr2 is not None:
            _reads(node.expr2, out)
        return
    if isinstance(node, nodes.Name) and node.ctx == "load":
        out.add(node.name)
        return
    for child in node.iter_child_nodes():
        _reads(child, out)


def first_check_reads(condition: str) -> set[str]:
    """The names a ``while:`` condition reads the first time it is checked, before any
    iteration ran (empty if it does not parse: that is reported elsewhere)."""
    out: set[str] = set()
    try:
        _reads(ENV.parse("{{ " + condition + " }}"), out)
    except (TemplateSyntaxError, RecursionError):
        return set()
    return out


def while_problems(spec: LoopBlock, body: Collection[str]) -> list[str]:
    """A ``while`` is checked before the first iteration, when no body block has run."""
    if spec.while_ is None:
        return []
    return [
        f"`while` is checked before the first iteration, when '{name}' has not run yet; "
        "guard it (`loop.index == 0 or ...`) or use `do_while`"
        for name in sorted(first_check_reads(spec.while_) & set(body))
    ]


def _constant_size(value: Any) -> int | None:
    """How many iterations or branches a count or collection gives, when that is known
    without running anything (a number, or a literal list or mapping)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    if isinstance(value, list | dict):
        return len(value)
    return None


def cap_problems(spec: LoopBlock | ParallelBlock) -> list[tuple[str, str]]:
    """``(field, message)`` when a constant count or literal collection is over the cap:
    every run would fail (the engine checks again when the number comes from a template)."""
    if isinstance(spec, LoopBlock):
        field, given, cap, cap_name = "count", spec.count, spec.max_iterations, "max_iterations"
        if spec.for_each is not None:
            field, given = "for_each", spec.for_each
    else:
        field, given, cap, cap_name = "count", spec.count, spec.max_branches, "max_branches"
        if spec.collection is not None:
            field, given = "collection", spec.collection
    total = _constant_size(given)
    if total is None or total <= cap:
        return []
    unit = "iterations" if isinstance(spec, LoopBlock) else "branches"
    return [
        (
            field,
            f"`{field}` gives {total:,} {unit}, more than {cap_name} ({cap:,}); "
            f"raise `{cap_name}` if you mean it",
        )
    ]


def child_problems(spec: WorkflowBlock, child: Workflow) -> list[tuple[tuple[str, ...], str, str]]:
    """``(where, message, code)``: ``with:`` must be inputs the child takes, with every
    required one given, and the child must not pause (it could not be resumed through its
    parent)."""
    found: list[tuple[tuple[str, ...], str, str]] = []
    declared = child.definition.inputs
    path = clip(spec.path)
    if declared:
        for key in spec.with_:
            if key not in declared:
                found.append(
                    (
                        ("with", key),
                        f"`with: {clip(key)}` is not an input of child workflow {path} (its "
                        f"inputs: {', '.join(declared)}){did_you_mean(key, declared)}",
                        "bad_argument",
                    )
                )
        for name, input_spec in declared.items():
            required = input_spec.required is not False and input_spec.default is None
            if required and name not in spec.with_:
                found.append(
                    (
                        ("with",),
                        f"child workflow {path} needs input '{name}', which `with:` does not give",
                        "bad_argument",
                    )
                )
    if child.can_pause:
        found.append(
            (
                ("path",),
                f"child workflow {path} can pause for input (block "
                f"'{child.pause_points[0]}'), which a child workflow cannot do yet",
                "invalid_child_workflow",
            )
        )
    return found
