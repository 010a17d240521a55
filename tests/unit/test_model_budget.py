"""model/budget.py and model/sandbox.py: template evaluation is bounded in time, in what
it builds and in nesting; every limit ends in a clear ExpressionLimitError (at run time)
or a ValueError (at compile time, when the template reads no name), never a hang."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowtrail.errors import ExpressionLimitError
from flowtrail.model import expressions as ex
from flowtrail.model.budget import Budget, Limits

SMALL = Limits(timeout_seconds=0.5, max_chars=100_000)
CTX: dict[str, Any] = {"x": {"s": "abc", "n": 100_000, "big": 10**9, "one": 1}}


def _evaluate(source: str, *, template: bool = False, limits: Limits = SMALL) -> Any:
    compiled = ex.compile_template(source) if template else ex.compile_expression(source)
    return Budget(limits).run(lambda: compiled(CTX))


# Each reads `x`, so it is not evaluated at compile time; each would take gigabytes or
# minutes without the budget.
HEAVY_EXPRESSIONS = [
    ("x.s * x.big", "the result of '*' would be 3,000,000,000 characters"),
    ("[x.s] * x.big", "the result of '*' would be 1,000,000,000 characters"),
    ("x.s * 20000 + x.s * 20000", "the result of '+' would be 120,000 characters"),

    ("'{:>1000000000}'.format(x.one)", "a formatted field would be 1,000,000,001 characters"),
    ("'{:.1000000000f}'.format(x.one)", "a formatted field"),
    ("'{a}{a}'.format_map({'a': x.s * 20000})", "the formatted text would be"),
    ("'%1000000000d' % x.one", "the formatted text would be"),
    ("'%1000000000d' | format(x.one)", "the formatted text would be"),
    ("x.s | indent(x.big)", "the result of indent()"),
    ("x.s | center(x.big)", "the result of center()"),
    ("x.s | wordwrap(1, true, x.s * 30000)", "the result of wordwrap()"),
    ("(x.s * 30000) | replace('a', x.s * 10)", "the result of replace()"),
    ("range(x.n) | join(x.s * 10)", "the result of join()"),
    ("[x.one] | json(indent=x.big)", "a JSON indent"),
    ("[x.s * 30000, x.s * 30000] | json", "the JSON text"),
    ("[x.s * 30000, x.s * 30000] | tojson", "the JSON text"),
    ("[x.s * 30000, x.s * 30000] | string", "the text of a value"),
    ("[x.s * 30000, x.s * 30000] | pprint", "the text of a value"),
    ("[x.one] | batch(x.big, 0) | list", "the batch size would be 1,000,000,000 items"),
    ("[x.one] | slice(x.big) | list", "the number of slices"),
    ("lipsum(x.big)", "the result of lipsum()"),
    ("x.s.center(x.big)", "the result of center()"),
    ("x.s.zfill(x.big)", "the result of zfill()"),
    ("x.one.to_bytes(x.big, 'big')", "the result of to_bytes()"),
    ("('\\t' * 1000).expandtabs(x.big)", "the result of expandtabs()"),
    ("(x.s * 30000).replace('a', x.s * 10)", "the result of replace()"),
    ("(x.s * 10).join(range(x.n) | map('string'))", "over the limit"),
    ("range(x.n) | map('center', 1000) | list", "the items of a loop or filter"),
    ("([[x.one]] * x.n) | sum(start=[])", "FLOWTRAIL_EXPRESSION"),
    ("x.s ~ (x.s * 20000) ~ (x.s * 20000)", "the result of '~'"),
    ("[x.s * 30000] * 4", "the value of the expression"),
]


@pytest.mark.parametrize(("source", "says"), HEAVY_EXPRESSIONS)
def test_heavy_expressions_stop_with_a_clear_error(source: str, says: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitError, match="FLOWTRAIL_EXPRESSION") as caught:
        _evaluate(source)
    assert says in str(caught.value)
    assert caught.value.code == "expression_limit"
    assert time.monotonic() - started < 10  # a hang guard


HEAVY_TEMPLATES = [
    # loops, nested: every step is a tick, so the time (or step) bound ends them
    "{% for i in range(x.n) %}{% for j in range(x.n) %}{% endfor %}{% endfor %}",
    # doubling through a namespace, with ~ and with +
    "{% set ns = namespace(s=x.s) %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}",
    "{% set ns = namespace(s=x.s) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}",
    # output, and output kept in a {% set %} buffer or a macro
    "{% for i in range(x.n) %}{{ x.s * 1000 }}{% endfor %}",
    "{% set b %}{% for i in range(x.n) %}{{ x.s * 1000 }}{% endfor %}{% endset %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    "{{ f(x.n) }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(x.one) }}",
]


@pytest.mark.parametrize("source", ["9 ** (x.big)", "(x.one * 2) ** 300000"])
def test_huge_powers_stop_before_they_are_computed(source: str) -> None:
    with pytest.raises(ExpressionLimitError, match=r"the result of '\*\*' would have about"):
        _evaluate(source)


@pytest.mark.parametrize("source", HEAVY_TEMPLATES)
def test_heavy_templates_stop_with_a_clear_error(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitError, match=r"template|result|text"):
        _evaluate(source, template=True)
    assert time.monotonic() - started < 10


def test_the_time_limit_names_its_setting() -> None:
    looping = "{% for i in range(x.n) %}{% for j in range(x.n) %}{% endfor %}{% endfor %}"
    with pytest.raises(ExpressionLimitError) as caught:
        _evaluate(looping, template=True, limits=Limits(0.2, 10**12))
    assert str(caught.value) == (
        "template evaluation took longer than 0.2s (FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS)"
    )


def test_a_stopped_budget_ends_the_evaluation_at_its_next_step() -> None:
    allowance = Budget(Limits(600, 10**12))
    allowance.stopped = True
    looping = ex.compile_template("{% for i in range(x.n) %}{{ i }}{% endfor %}")
    with pytest.raises(ExpressionLimitError, match="stopped"):
        allowance.run(lambda: looping(CTX))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'%s-%d' % (x.s, 3)", "abc-3"),
        ("'{:>5}|{}'.format(x.one, 'b')", "    1|b"),
        ("x.s ~ 1 ~ [1, 2]", "abc1[1, 2]"),
        ("range(5) | map('string') | join(',')", "0,1,2,3,4"),
        ("[1, 2, 3] | sum", 6),
        ("[[1], [2]] | sum(start=[])", [1, 2]),
        ("x.s | indent(2, true)", "  abc"),
        ("x.s | center(7)", "  abc  "),
        ("[1, 2, 3, 4] | batch(3, 0) | list", [[1, 2, 3], [4, 0, 0]]),
        ("{'a': [1]} | json(indent=1)", '{\n "a": [\n  1\n ]\n}'),
        ("2 ** 64", 2**64),
        ("x.s * 3", "abcabcabc"),
    ],
)
def test_ordinary_templates_are_unchanged(source: str, expected: Any) -> None:
    assert _evaluate(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**9 }}",
        "{{ 9 ** (9 ** 9) }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ 'x' | indent(10**9) }}",
        "{{ [1] | json(indent=10**9) }}",
        "text {{ range(100000) | join('z' * 1000) }}",
        "{% set ns = namespace(s='a') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
    ],
)
def test_a_constant_template_over_the_limits_is_refused_when_compiled(source: str) -> None:
    """It reads no name, so it is evaluated once at validation; Jinja's constant folding
    (``9 ** (9 ** 9)``) no longer runs operators at compile time."""
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"FLOWTRAIL_EXPRESSION_MAX_CHARS|digits"):
        ex.compile_template(source)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ " + "(" * 80 + "1" + ")" * 80 + " }}", "brackets nested more than 32 levels deep"),
        ("{{ " + "[" * 40 + "]" * 40 + " }}", "brackets nested more than 32 levels deep"),
        ("{{ " + "not " * 400 + "x }}", "nested"),
        ("{{ " + "+".join(["x.one"] * 3000) + " }}", "nested"),
        ("{% if x %}" * 100 + "{% endif %}" * 100, "nested"),
        ("{% for i in x %}" * 25 + "{% endfor %}" * 25, "nested"),
    ],
)
def test_deep_nesting_is_a_clear_error_not_a_traceback(source: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ex.compile_template(source)
    try:  # reading the names either works (the parser copes) or says the same
        ex.references(source)
    except ValueError as exc:
        assert says in str(exc)
