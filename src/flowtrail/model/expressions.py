"""Templates and expressions, evaluated by Jinja2's sandbox (never ``eval`` of user text).

A string that is exactly one ``{{ ... }}`` yields the expression's native value; any other
string with templates renders to text. ``if:``, ``while:`` and ``pick:`` are bare
expressions. A missing field raises :class:`ReferenceResolutionError` naming what exists.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, NoReturn, TypeVar

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.utils import missing

from flowtrail.errors import BlockError, ExpressionLimitError, ReferenceResolutionError
from flowtrail.model import budget, sandbox
from flowtrail.model.budget import Budget, Limits
from flowtrail.model.limits import parse_json

T = TypeVar("T")

_WHOLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)
_HAS_TEMPLATE = re.compile(r"\{\{|\{%")


def _available(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj)
        return ", ".join(keys) if keys else "(none)"
    if isinstance(obj, list | tuple):
        return f"indexes 0..{len(obj) - 1}" if obj else "(empty list)"
    return f"(a {type(obj).__name__} has no fields)"


class Environment(dict[str, str]):
    """``env.*``: the variables the workflow declares under ``env:`` (and
    ``FLOWTRAIL_ENV_ALLOW`` allows) that are set. A missing one is explained without
    naming any variable the workflow did not declare."""

    declared: tuple[str, ...] = ()
    blocked: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, declared: Iterable[str], environ: Mapping[str, str], allow: Iterable[str] | None
    ) -> Environment:
        names = tuple(declared)
        patterns = None if allow is None else tuple(allow)
        blocked = frozenset(
            n
            for n in names
            if patterns is not None and not any(fnmatchcase(n, p) for p in patterns)
        )
        env = cls({n: environ[n] for n in names if n in environ and n not in blocked})
        env.declared, env.blocked = names, blocked
        return env

    def explain(self, name: str) -> str:
        if name in self.blocked:
            return f"environment variable '{name}' is not allowed by FLOWTRAIL_ENV_ALLOW"
        if name in self.declared:
            return f"environment variable '{name}' is not set"
        declared = ", ".join(self.declared) or "none"
        return f"'env.{name}' is not declared in the workflow's `env:` (declared: {declared})"


def _missing(obj: Any, name: Any) -> str:
    if isinstance(obj, Environment):
        return obj.explain(str(name))
    return f"'{name}' does not exist; available: {_available(obj)}"


class _Undefined(StrictUndefined):
    """Fails on any use, with a message that lists the fields that do exist."""

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        obj = self._undefined_obj
        name = self._undefined_name
        if obj is missing:
            raise UnknownNameError(f"'{name}' is not defined")
        if obj is not None and not isinstance(obj, _Undefined) and name is not None:
            raise ReferenceResolutionError(_missing(obj, name))
        raise ReferenceResolutionError(self._undefined_message)


# jinja binds every failing dunder to the base class's function at class creation, so the
# override above has to be bound again by name.
for _name, _value in list(vars(Undefined).items()) + list(vars(StrictUndefined).items()):
    if _value in (Undefined._fail_with_undefined_error, StrictUndefined._fail_with_undefined_error):
        setattr(_Undefined, _name, _Undefined._fail_with_undefined_error)


class UnknownNameError(ReferenceResolutionError):
    """A top-level name that is not in scope; the evaluator adds what is."""


class _Env(sandbox.BoundedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        # Mappings first: `fetch.body.items` must read the key, not dict.items.
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


ENV = _Env(
    undefined=_Undefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=sandbox.finalize,
)
sandbox.install(ENV)


def _json_filter(value: Any, **kwargs: Any) -> str:
    return budget.bounded_json(value, **kwargs)


ENV.filters["json"] = _json_filter


def from_json(text: str) -> Any:
    """Parse JSON text (the ``from_json`` filter); ValueError says where it is not JSON."""
    if not isinstance(text, str):
        raise ValueError(f"from_json needs text, got {type(text).__name__}")
    try:
        return parse_json(text)  # nesting and number size within the documented limits
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def _from_json_filter(text: Any) -> Any:
    try:
        return from_json(text)
    except ValueError as exc:
        raise BlockError(f"from_json: {exc}") from None


ENV.filters["from_json"] = _from_json_filter

Evaluator = Callable[[Mapping[str, Any]], Any]


class Unavailable(_Undefined):
    """Stands in for a name that exists but has no value here (a block that did not run
    on this path). It is undefined to ``is defined`` and ``default()`` (so a join after a
    branch can read either side), reading a field of it gives it back, and any other use
    raises the reason."""

    __slots__ = ()

    def __init__(self, reason: str) -> None:
        super().__init__(hint=reason)

    @property
    def reason(self) -> str:
        return self._undefined_hint or "not available"

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ReferenceResolutionError(self.reason)

    def fail(self) -> NoReturn:
        self._fail_with_undefined_error()

    # chainable, like jinja's ChainableUndefined: `gift.result | default(...)` works
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, _name: Any) -> Unavailable:  # type: ignore[override]
        return self


for _name, _value in list(vars(_Undefined).items()):
    if _value is _Undefined._fail_with_undefined_error and _name not in vars(Unavailable):
        setattr(Unavailable, _name, Unavailable._fail_with_undefined_error)


def _with_scope(exc: UnknownNameError, context: Mapping[str, Any]) -> ReferenceResolutionError:
    names = ", ".join(sorted(k for k in context if not k.startswith("_"))) or "(none)"
    return ReferenceResolutionError(f"{exc}; in scope: {names}")


def _check(value: Any) -> Any:
    if isinstance(value, _Undefined):  # an Unavailable too: a plain reference fails
        value._fail_with_undefined_error()
    return value


# `name`, `name.field`, `name.list[0]`, `name["key"]`: most references are just a path,
# which is walked directly (same lookups and messages) instead of through Jinja's runtime.
_STEP = r"""(?:\.[A-Za-z_]\w*|\[\d+\]|\["[^"\\]*"\]|\['[^'\\]*'\])"""
_PATH = re.compile(rf"^\s*(?P<root>[A-Za-z_]\w*)(?P<steps>{_STEP}*)\s*$")
_STEPS = re.compile(r"""\.(?P<attr>[A-Za-z_]\w*)|\[(?P<index>\d+)\]|\[["'](?P<key>[^"']*)["']\]""")


def _plain_path(source: str) -> tuple[str, list[str | int]] | None:
    """``a.b[0]["c"]`` as its root name and steps (a number for an index); ``None`` for
    anything that is not a plain path, or whose steps ``_STEPS`` would read otherwise
    than ``_PATH`` matched them (Jinja reads those)."""
    match = _PATH.match(source)
    if match is None:
        return None
    root, text = match["root"], match["steps"]
    if root in ENV.globals or root in ("true", "false", "none", "True", "False", "None"):
        return None
    steps: list[str | int] = []
    consumed = 0
    for step in _STEPS.finditer(text):
        if step.start() != consumed:
            return None
        consumed = step.end()
        steps.append(
            int(step["index"])
            if step["index"] is not None
            else (step["attr"] if step["attr"] is not None else step["key"])
        )
    return (root, steps) if consumed == len(text) else None


def _path_evaluator(source: str, fallback: Callable[[], Evaluator]) -> Evaluator | None:
    plain = _plain_path(source)
    if plain is None:
        return None
    root, steps = plain

    def walk(context: Mapping[str, Any]) -> Any:
        if root not in context:
            raise _with_scope(UnknownNameError(f"'{root}' is not defined"), context)
        value = _check(context[root])
        for step in steps:
            if isinstance(value, Mapping) and not isinstance(step, int):
                if step not in value:
                    raise ReferenceResolutionError(_missing(value, step))
                value = _check(value[step])
            elif isinstance(value, list | tuple) and isinstance(step, int):
                if step >= len(value):
                    raise ReferenceResolutionError(
                        f"'{step}' does not exist; available: {_available(value)}"
                    )
                value = value[step]
            else:  # attribute access on an object, or a mapping indexed by number
                return fallback()(context)
        return value

    return walk


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Evaluator:
    """Compile a bare expression (``total.result > 100``) to a function of the context."""
    fast = _path_evaluator(source, lambda: _compile_jinja(source))
    return fast if fast is not None else _compile_jinja(source)


def _nesting(source: str) -> int:
    deepest = level = 0
    for char in source:
        if char in "([{":
            level += 1
            deepest = max(deepest, level)
        elif char in ")]}":
            level -= 1
    return deepest


def _parsed(kind: str, source: str, parse: Callable[[], T]) -> T:
    """Parse or compile ``source``; every way it can be refused becomes a ValueError that
    says what is wrong (a syntax error, too deep a nesting), never a traceback."""
    shown = source if len(source) <= 200 else source[:199] + "…"
    if _nesting(source) - 2 > budget.MAX_NESTING:  # the {{ }} or {% %} around it
        raise ValueError(
            f"invalid {kind} {shown!r}: brackets nested more than {budget.MAX_NESTING} levels deep"
        )
    try:
        return parse()
    except TemplateSyntaxError as exc:
        raise ValueError(f"invalid {kind} {shown!r}: {exc.message}") from exc
    except ExpressionLimitError as exc:
        raise ValueError(f"invalid {kind} {shown!r}: {exc}") from None
    except (RecursionError, MemoryError, SyntaxError):  # the parser or Python's compiler
        raise ValueError(f"invalid {kind} {shown!r}: nested too deeply") from None


def _guarded(fn: Callable[[], T]) -> T:
    """Run one Jinja evaluation within the budget in force (a default one if none is)."""
    if not budget.in_force():
        return Budget().run(lambda: _guarded(fn))
    try:
        return fn()
    except RecursionError:
        raise ExpressionLimitError("template evaluation nested too deeply (recursion)") from None
    except MemoryError:
        raise ExpressionLimitError("template evaluation ran out of memory") from None


def _probe(kind: str, source: str, evaluator: Evaluator, text: str) -> None:
    """A template that reads no name is evaluated once at validation, so one that can
    never finish within the limits is refused before anything runs."""
    tree = ENV.parse(text)
    loaded = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    if not loaded - stored - set(ENV.globals) - {"loop"}:
        try:
            evaluator({})
        except ExpressionLimitError as exc:
            shown = source if len(source) <= 200 else source[:199] + "…"
            raise ValueError(f"invalid {kind} {shown!r}: {exc}") from None
        except Exception:  # other errors depend on how it is used; they surface at run time
            return


@lru_cache(maxsize=4096)
def _compile_jinja(source: str) -> Evaluator:
    fn = _parsed(
        "expression", source, lambda: ENV.compile_expression(source, undefined_to_none=False)
    )

    def evaluate(context: Mapping[str, Any]) -> Any:
        try:
            value = _check(_guarded(lambda: fn(**context)))
        except UnknownNameError as exc:
            raise _with_scope(exc, context) from None
        # what it built (a list holding one big text many times, say) must fit too
        return _guarded(lambda: budget.check_value(value, "the value of the expression"))

    _parsed(
        "expression", source, lambda: _probe("expression", source, evaluate, "{{ " + source + " }}")
    )
    return evaluate


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Evaluator:
    """Compile a template string. Whole-string ``{{ x }}`` keeps the native type."""
    whole = _WHOLE.match(source)
    if whole is not None:
        return compile_expression(whole.group("expr").strip())
    if not _HAS_TEMPLATE.search(source):
        return lambda _context: source
    template = _parsed("template", source, lambda: ENV.from_string(source))

    def render_text(context: Mapping[str, Any]) -> Any:
        try:
            return _guarded(lambda: template.render(**context))
        except UnknownNameError as exc:
            raise _with_scope(exc, context) from None

    _parsed("template", source, lambda: _probe("template", source, render_text, source))
    return render_text


def is_template(value: Any) -> bool:
    return isinstance(value, str) and _HAS_TEMPLATE.search(value) is not None


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Resolve every template inside a (nested) value."""
    if isinstance(value, str):
        return compile_template(value)(context) if is_template(value) else value
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def compile_all(value: Any) -> None:
    """Compile every template inside a nested value; ValueError names the first bad one."""
    if isinstance(value, str):
        if is_template(value):
            compile_template(value)
    elif isinstance(value, dict):
        for item in value.values():
            compile_all(item)
    elif isinstance(value, list):
        for item in value:
            compile_all(item)


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    return compile_expression(source)(context)


def _template_sources(value: Any) -> Iterator[tuple[str, bool]]:
    """(source, is_bare_expression) for every template inside a nested value."""
    if isinstance(value, str) and is_template(value):
        whole = _WHOLE.match(value)
        if whole is not None:
            yield whole.group("expr").strip(), True
        else:
            yield value, False
    elif isinstance(value, dict):
        for v in value.values():
            yield from _template_sources(v)
    elif isinstance(value, list):
        for v in value:
            yield from _template_sources(v)


def _roots(ast: nodes.Node) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every loaded name with the attribute path read from it (``a.b.c`` → a, (b, c))."""
    attr_children: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr_children.add(id(node.node))  # type: ignore[attr-defined]
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if id(node) in attr_children:
            continue
        path: list[str] = []
        cur: nodes.Node = node
        while isinstance(cur, nodes.Getattr | nodes.Getitem):
            if isinstance(cur, nodes.Getattr):
                path.append(cur.attr)
            elif isinstance(cur.arg, nodes.Const) and isinstance(cur.arg.value, str):
                path.append(cur.arg.value)
            else:
                path.clear()
            cur = cur.node
        if isinstance(cur, nodes.Name) and cur.ctx == "load":
            yield cur.name, tuple(reversed(path))


def _path_roots(source: str) -> list[tuple[str, tuple[str, ...]]] | None:
    """What :func:`_roots` gives for a plain path (``a.b["c"]``), read without Jinja's
    parser; ``None`` for anything else. The path stops at a numeric index, as there."""
    plain = _plain_path(source)
    if plain is None:
        return None
    root, steps = plain
    path: list[str] = []
    for step in steps:
        if isinstance(step, int):
            break
        path.append(step)
    return [(root, tuple(path))]


def references(value: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The names (and attribute paths) a value's templates read; raises ValueError on
    a syntax error."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for source, bare in _template_sources(value):
        plain = _path_roots(source) if bare else None
        if plain is not None:
            found.extend(plain)
            continue
        text = "{{ " + source + " }}" if bare else source
        found.extend(_parsed("template", source, lambda t=text: list(_roots(ENV.parse(t)))))  # type: ignore[misc]
    return found


def expression_references(source: str) -> list[tuple[str, tuple[str, ...]]]:
    return references("{{ " + source + " }}")


def _names_in(source: str) -> Callable[[], list[nodes.Name]]:
    return lambda: list(ENV.parse(source).find_all(nodes.Name))


def local_names(value: Any) -> set[str]:
    """Names bound inside templates (``{% for x in ... %}``, ``{% set %}``)."""
    bound: set[str] = set()
    for source, bare in _template_sources(value):
        if bare:
            continue
        try:
            names = _parsed("template", source, _names_in(source))
        except ValueError:
            continue  # reported where the template is compiled
        bound.update(n.name for n in names if n.ctx in ("store", "param"))
    return bound


# -- evaluating a block's templates without holding up the event loop ---------------------

_THREADS = ThreadPoolExecutor(4, thread_name_prefix="flowtrail-expr")


def is_light(value: Any) -> bool:
    """Whether every template in ``value`` is a plain reference (``{{ a.b[0] }}``): those
    only look values up, so they are evaluated in place, not in a worker thread."""
    return all(
        bare and _PATH.match(source) is not None for source, bare in _template_sources(value)
    )


async def resolve(fn: Callable[[], T], limits: Limits, *, light: bool = False) -> T:
    """Evaluate templates (``fn``) within ``limits``. Anything heavier than plain
    references runs in a worker thread, so the run's deadline, block timeouts, signals and
    cancel act at once: when this is cancelled, the evaluation stops at its next tick."""
    allowance = Budget(limits)
    if light:
        return allowance.run(fn)
    future = asyncio.get_running_loop().run_in_executor(_THREADS, allowance.run, fn)
    try:
        return await future
    except asyncio.CancelledError:
        allowance.stopped = True
        raise
