"""Bounds on template evaluation: time, the size of what a template builds, and nesting.

Jinja's sandbox keeps templates away from Python internals but not from heavy work:
``'a' * 10**9``, ``'{:>1000000000}'.format(1)`` or two nested ``{% for %}`` over
``range(100000)`` each run in one C call or one Python loop. Every evaluation therefore
runs under a :class:`Budget`:

- every operation that can build something larger than its inputs (``*``, ``**``, ``+``,
  ``%``, ``~``, ``str.format`` widths, string methods, the size-taking filters, text
  output) is checked *before* it runs, against ``max_chars``;
- every ``{% for %}`` step, every call and every item a filter pulls through a generator
  is a *tick*; a tick fails once ``timeout_seconds`` have passed, or as soon as whoever
  waits for the evaluation has stopped waiting (a cancel, a deadline, a block timeout).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from flowtrail.errors import ExpressionLimitError

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_CHARS = 10_000_000
MAX_INT_BITS = 65_536  # about 20,000 decimal digits
MAX_NESTING = 32  # brackets inside one template; the parser recurses once per level
MAX_DEPTH = 64  # nodes inside each other in a parsed template (statements included)

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one evaluation may spend (``FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS``,
    ``FLOWTRAIL_EXPRESSION_MAX_CHARS``)."""

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_chars: int = DEFAULT_MAX_CHARS


class Budget:
    """The allowance of one evaluation (all templates of one block share one)."""

    __slots__ = ("deadline", "limits", "stopped", "ticks", "written")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.deadline = time.monotonic() + self.limits.timeout_seconds
        self.ticks = 0
        self.written = 0  # text written by {{ }} in all templates so far (buffers included)
        self.stopped = False  # set from the event loop when nobody waits any more

    def tick(self) -> None:
        if self.stopped:
            raise ExpressionLimitError("template evaluation stopped: the block is ending")
        self.ticks += 1
        if self.ticks & 63 == 0:
            if time.monotonic() > self.deadline:
                raise ExpressionLimitError(
                    f"template evaluation took longer than {self.limits.timeout_seconds:g}s "
                    "(FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS)"
                )
            # each step can leave an entry in a buffer ({% set %}, a macro): bound them too
            self.size(self.ticks, "template evaluation", "loop steps and calls")

    def write(self, chars: int) -> None:
        self.written += chars
        self.size(self.written, "the text written by the templates")

    def size(self, chars: int, what: str, unit: str = "characters") -> None:
        if chars > self.limits.max_chars:
            raise ExpressionLimitError(
                f"{what} would be {chars:,} {unit}, over the limit of "
                f"{self.limits.max_chars:,} (FLOWTRAIL_EXPRESSION_MAX_CHARS)"
            )

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` with this budget in force (in whatever thread runs it)."""
        token = _CURRENT.set(self)
        try:
            return fn()
        finally:
            _CURRENT.reset(token)


_CURRENT: ContextVar[Budget | None] = ContextVar("flowtrail_expression_budget", default=None)


def current() -> Budget:
    """The budget in force; outside any (Jinja folding constants at compile time), a
    fresh default one."""
    return _CURRENT.get() or Budget()


def in_force() -> bool:
    return _CURRENT.get() is not None


def measure(value: Any, limit: int) -> int:
    """About how many characters ``str(value)`` or its JSON would take; stops counting
    past ``limit`` (a list holding one big string 1,000 times counts it 1,000 times)."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            if total <= limit:
                for key, inner in item.items():
                    stack.append(key)
                    stack.append(inner)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def check_value(value: Any, what: str) -> Any:
    budget = current()
    budget.size(measure(value, budget.limits.max_chars), what)
    return value


def metered(items: Iterable[Any]) -> Iterator[Any]:
    """Items of a ``for`` loop or a lazy filter chain: one tick each, and a bound on the
    text pulled through."""
    budget = current()
    pulled = 0
    for item in items:
        budget.tick()
        if isinstance(item, str | bytes):
            pulled += len(item)
            if pulled > budget.limits.max_chars:
                budget.size(pulled, "the items of a loop or filter")
        yield item


# -- operators -------------------------------------------------------------------------


def _length(value: Any) -> int | None:
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return None


def checked_binop(op: str, left: Any, right: Any) -> None:
    """Refuse ``left op right`` before computing it when the result would be too big."""
    budget = current()
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            size = _length(seq)
            if size is not None and isinstance(times, int) and size:
                budget.size(size * max(times, 0), "the result of '*'")
        if isinstance(left, int) and isinstance(right, int):
            _int_bits(left.bit_length() + right.bit_length(), "'*'")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _int_bits(left.bit_length() * right, "'**'")
    elif op == "+":
        a, b = _length(left), _length(right)
        if a is not None and b is not None:
            budget.size(a + b, "the result of '+'")
    elif op == "%" and isinstance(left, str):
        check_printf(left, right)


def _int_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise ExpressionLimitError(
            f"the result of {what} would have about {bits * 3 // 10:,} digits, over the limit "
            f"of {MAX_INT_BITS * 3 // 10:,}"
        )


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def check_printf(fmt: str, args: Any) -> None:
    """``'%10d' % x`` and the ``format`` filter: widths and precisions, and the text."""
    budget = current()
    limit = budget.limits.max_chars
    total = len(fmt)
    for match in _PRINTF.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                raise ExpressionLimitError("a '*' width in a % format is not supported")
            if number is not None:
                total += int(number) if len(number) < 12 else limit + 1
    total += measure(args, limit)
    budget.size(total, "the formatted text")


_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?$", re.DOTALL)


def check_format_spec(value: Any, spec: str) -> int:
    """A ``str.format`` field: its width and precision, and the value's text."""
    budget = current()
    limit = budget.limits.max_chars
    total = measure(value, limit)
    match = _SPEC.match(spec)
    if match is not None:
        for number in match.groups():
            if number:
                total += int(number) if len(number) < 12 else limit + 1
    budget.size(total, "a formatted field")
    return total


# -- string methods called from templates -------------------------------------------------

_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def check_method(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Before ``obj(*args)`` runs: refuse the string and bytes methods that can build far
    more than they are given. Returns the arguments to call with (``join`` materialises
    its iterable once)."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    budget = current()
    if isinstance(owner, int) and not isinstance(owner, bool) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            budget.size(length, "the result of to_bytes()")
        return args
    if not isinstance(owner, str | bytes | bytearray):
        return args
    size = len(owner)
    if name in _WIDTH_METHODS and args and isinstance(args[0], int):
        budget.size(args[0], f"the result of {name}()")
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            tabs = owner.count("\t" if isinstance(owner, str) else b"\t")  # type: ignore[arg-type]
            budget.size(size + tabs * tab, "the result of expandtabs()")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str | bytes) and isinstance(new, str | bytes):
            hits = owner.count(old) if old else size + 1  # type: ignore[arg-type]
            budget.size(size + hits * len(new), "the result of replace()")
    elif name == "join" and args:
        items = list(metered(args[0]))
        total = sum(len(i) if isinstance(i, str | bytes) else 0 for i in items)
        budget.size(total + size * max(len(items) - 1, 0), "the result of join()")
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1)
        budget.size(size * max(longest, 1), "the result of translate()")
    return args


def check_result(value: Any, what: str) -> Any:
    """After a call: a string or list that came out too big is still refused."""
    if isinstance(value, str | bytes | list | tuple):
        current().size(len(value), what)
    return value


# -- bounded versions of the size-taking filters --------------------------------------------


def bounded_join(parts: Iterable[Any]) -> str:
    """The template's whole text (Jinja's ``concat``), refused once it grows too big."""
    budget = current()
    limit = budget.limits.max_chars
    out: list[str] = []
    total = 0
    for part in parts:
        total += len(part)
        if total > limit:
            budget.size(total, "the rendered text")
        out.append(part)
    return "".join(out)


def concat(parts: list[Any]) -> str:
    """``a ~ b ~ c``."""
    budget = current()
    budget.tick()
    limit = budget.limits.max_chars
    total = sum(measure(p, limit) for p in parts)
    budget.size(total, "the result of '~'")
    return "".join(str(p) for p in parts)


def bounded_json(value: Any, indent: Any = None, **kwargs: Any) -> str:
    """``json`` and ``tojson``: streamed, so a deep or shared structure cannot build
    gigabytes before the size check."""
    budget = current()
    limit = budget.limits.max_chars
    if isinstance(indent, int):
        budget.size(indent, "a JSON indent")
    encoder = json.JSONEncoder(indent=indent, **kwargs)
    out: list[str] = []
    total = 0
    for chunk in encoder.iterencode(value):
        total += len(chunk)
        if total > limit:
            budget.size(total, "the JSON text")
        out.append(chunk)
    return "".join(out)


def width(value: Any, what: str, unit: str = "characters") -> None:
    if isinstance(value, int):
        current().size(value, what, unit)


def lines_times(text: Any, per_line: int, what: str) -> None:
    s = str(text)
    current().size(len(s) + (s.count("\n") + 1) * per_line, what)


def wrap_filter_like(
    fn: Callable[..., Any], stock: Callable[..., Any], value_at: int
) -> Callable[..., Any]:
    """``fn`` as a filter standing in for ``stock``: when its value is a generator
    (``map``, ``select`` …) it is metered item by item."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if len(args) > value_at and isinstance(args[value_at], Iterator):
            args = (*args[:value_at], metered(args[value_at]), *args[value_at + 1 :])
        return fn(*args, **kwargs)

    wrapped.__dict__.update(getattr(stock, "__dict__", {}))  # keeps jinja's pass_context & co.
    wrapped.__name__ = getattr(stock, "__name__", "filter")
    wrapped.__doc__ = stock.__doc__
    return wrapped
