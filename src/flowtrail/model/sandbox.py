"""Jinja2's immutable sandbox with every evaluation held to a :mod:`budget`.

What changes from the stock sandbox, and why:

- ``*``, ``**``, ``+`` and ``%`` are intercepted, so their size is checked before they run.
  Intercepted operators are also never folded at compile time, so ``{{ 9**9**9 }}``
  cannot hang validation.
- A parsed template is rewritten before code generation: every ``{% for %}`` iterable and
  every ``~`` goes through a metered filter, and a template nested deeper than
  :data:`budget.MAX_DEPTH` is refused (the code generator and Python's compiler recurse).
- Calls tick the budget and check the string methods that can amplify (``center``,
  ``replace``, ``join``, ``to_bytes`` …); ``str.format`` checks widths and precisions.
- The filters that take a size (``indent``, ``center``, ``wordwrap``, ``replace``,
  ``join``, ``format``, ``batch``, ``slice``, ``sum``, ``json``/``tojson``, ``string``,
  ``pprint``) and ``lipsum`` are bounded; every other filter meters a generator it is
  given, so ``map``/``select`` chains stay within the budget too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from string import Formatter
from typing import Any

from jinja2 import nodes
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import _PassArg, generate_lorem_ipsum, pass_environment
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from flowtrail.errors import ExpressionLimitError
from flowtrail.model import budget

_ITER, _CONCAT = "_flowtrail_iter", "_flowtrail_concat"


class _Guard(NodeTransformer):
    """Routes ``for`` iterables and ``~`` through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _ITER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, _CONCAT, [], [], None, None, lineno=node.lineno)


def depth(tree: nodes.Node) -> int:
    """How deeply the nodes of a parsed template nest (without recursing)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level <= budget.MAX_DEPTH:
            stack.extend((child, level + 1) for child in node.iter_child_nodes())
    return deepest


class _BoundedFormatter(SandboxedFormatter):
    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self.total = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.total += budget.check_format_spec(value, format_spec)
        budget.current().size(self.total, "the formatted text")
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(budget.bounded_join)  # the text of templates, macros, {% set %}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget.checked_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget.current().tick()
        args = budget.check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return budget.check_result(result, "the result of a call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        stock = super().wrap_str_format(value)
        if stock is None:
            return None
        text: str = value.__self__
        is_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map:  # argument errors: let the stock wrapper word them
                if kwargs or len(args) != 1:
                    return stock(*args, **kwargs)
                kwargs = args[0]
                args = ()
            formatter: Formatter
            if isinstance(text, Markup):
                formatter = _BoundedEscapeFormatter(self, escape=text.escape)
            else:
                formatter = _BoundedFormatter(self)
            return type(text)(formatter.vformat(text, args, kwargs))

        return bounded

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        if depth(source) > budget.MAX_DEPTH:
            raise ExpressionLimitError(
                f"the template is nested more than {budget.MAX_DEPTH} levels deep"
            )
        _Guard().visit(source)
        source.set_environment(self)
        return super()._generate(source, *args, **kwargs)


# -- bounded filters ----------------------------------------------------------------------


def _value_at(fn: Callable[..., Any]) -> int:
    return 0 if _PassArg.from_obj(fn) is None else 1


def _before(name: str, check: Callable[..., None]) -> Callable[..., Any]:
    """The stock filter ``name``, with ``check(value, *args, **kwargs)`` run first."""
    stock = FILTERS[name]
    at = _value_at(stock)

    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args[at:], **kwargs)
        return stock(*args, **kwargs)

    return budget.wrap_filter_like(bounded, stock, at)


def _indent(s: Any, width: Any = 4, *_a: Any, **_k: Any) -> None:
    per_line = width if isinstance(width, int) else len(str(width))
    budget.lines_times(s, per_line, "the result of indent()")


def _center(_value: Any, width: Any = 80, *_a: Any, **_k: Any) -> None:
    budget.width(width, "the result of center()")


def _wordwrap(
    s: Any, width: Any = 79, _break: Any = True, wrapstring: Any = None, *_a: Any, **kw: Any
) -> None:
    wrap = kw.get("wrapstring", wrapstring)
    per = len(wrap) if isinstance(wrap, str) else 1
    size = len(str(s))
    step = width if isinstance(width, int) and width > 0 else 1
    budget.current().size(size + (size // step + 1) * per, "the result of wordwrap()")


def _replace(s: Any, old: Any = "", new: Any = "", *_a: Any, **_k: Any) -> None:
    text = str(s)
    hits = text.count(str(old)) if old else len(text) + 1
    budget.current().size(len(text) + hits * len(str(new)), "the result of replace()")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    budget.check_printf(str(value), kwargs or args)


def _count(what: str) -> Callable[..., None]:
    def check(_value: Any, count: Any = 1, *_a: Any, **_k: Any) -> None:
        budget.width(count, what, "items")

    return check


def _whole(what: str) -> Callable[..., None]:
    def check(value: Any, *_a: Any, **_k: Any) -> None:
        budget.check_value(value, what)

    return check


def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(budget.metered(value))
    size = budget.measure(items, budget.current().limits.max_chars)
    budget.current().size(size + len(d) * max(len(items) - 1, 0), "the result of join()")
    return FILTERS["join"](eval_ctx, items, d, attribute)  # type: ignore[no-any-return]


_join.jinja_pass_arg = _PassArg.eval_context  # type: ignore[attr-defined]


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in budget.metered(iterable):  # sum() of lists is quadratic: tick each step
        budget.checked_binop("+", total, item)
        total = total + item
    return total


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    budget.current().size(max_words(n, max), "the result of lipsum()")
    return str(generate_lorem_ipsum(n, html, min, max))


def max_words(n: Any, most: Any) -> int:
    return int(n) * int(most) * 12 if isinstance(n, int) and isinstance(most, int) else 0


def install(env: BoundedEnvironment) -> None:
    """Give ``env`` the bounded filters and globals."""
    for name, stock in FILTERS.items():
        env.filters[name] = budget.wrap_filter_like(stock, stock, _value_at(stock))
    env.filters.update(
        {
            "indent": _before("indent", _indent),
            "center": _before("center", _center),
            "wordwrap": _before("wordwrap", _wordwrap),
            "replace": _before("replace", _replace),
            "format": _before("format", _format),
            "batch": _before("batch", _count("the batch size")),
            "slice": _before("slice", _count("the number of slices")),
            "string": _before("string", _whole("the text of a value")),
            "pprint": _before("pprint", _whole("the text of a value")),
            "join": _join,
            "sum": _sum,
            _ITER: budget.metered,
            _CONCAT: budget.concat,
        }
    )
    env.globals["lipsum"] = _lipsum
    env.policies["json.dumps_function"] = budget.bounded_json


def finalize(value: Any) -> Any:
    """A ``{{ value }}`` written into text (the output, a ``{% set %}`` block or a macro's
    buffer): everything written adds up against the limit."""
    allowance = budget.current()
    if isinstance(value, str):
        allowance.write(len(value))
    else:
        allowance.write(budget.measure(value, allowance.limits.max_chars))
    return value
