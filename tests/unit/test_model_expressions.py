"""model/expressions.py: native whole-string values, text rendering, messages for missing
fields, the sandbox, and reference extraction."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from flowtrail.errors import ReferenceResolutionError
from flowtrail.model import expressions as ex

CTX: dict[str, Any] = {
    "fetch": {"status": 200, "body": {"items": [{"id": 7}, {"id": 8}], "ok": True}},
    "numbers": {"result": {"alpha": 1, "beta": 2}},
    "count": {"result": 3},
    "word": {"result": "hi"},
    "nothing": {"result": None},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ count.result }}", 3),
        ("  {{ count.result }}\n", 3),  # surrounding whitespace still means "whole string"
        ("{{ fetch.body.items }}", [{"id": 7}, {"id": 8}]),
        ("{{ fetch.body.items[1].id }}", 8),
        ("{{ fetch.body.ok }}", True),
        ("{{ nothing.result }}", None),
        ("{{ count.result * 2 + 1 }}", 7),
        ("{{ [count.result, word.result] }}", [3, "hi"]),
        ("{{ fetch.body.items | length }}", 2),
    ],
)
def test_whole_string_template_keeps_the_native_value(template: str, expected: Any) -> None:
    assert ex.render(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n={{ count.result }}", "n=3"),
        ("{{ count.result }}{{ word.result }}", "3hi"),  # two templates: text, not native
        ("{{ word.result }} and {{ fetch.status }}", "hi and 200"),
        ("{% for i in fetch.body.items %}{{ i.id }},{% endfor %}", "7,8,"),
        ("plain text, no template", "plain text, no template"),
        ("{{ fetch.body | json }}", '{"items": [{"id": 7}, {"id": 8}], "ok": true}'),
    ],
)
def test_mixed_templates_render_to_text(template: str, expected: str) -> None:
    assert ex.render(template, CTX) == expected


def test_render_walks_nested_values_and_leaves_non_templates_alone() -> None:
    value = {
        "a": ["{{ count.result }}", "x{{ count.result }}", 5, None],
        "b": {"c": "{{ word.result }}"},
        "d": True,
    }
    assert ex.render(value, CTX) == {"a": [3, "x3", 5, None], "b": {"c": "hi"}, "d": True}


def test_mapping_keys_win_over_dict_methods() -> None:
    # `fetch.body.items` reads the key "items", not dict.items
    assert ex.render("{{ fetch.body.items[0].id }}", CTX) == 7
    with pytest.raises(ReferenceResolutionError, match="'values' does not exist"):
        ex.render("{{ numbers.result.values }}", CTX)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ numbers.result.missing }}", "'missing' does not exist; available: alpha, beta"),
        ("text {{ numbers.result.missing }}", "'missing' does not exist; available: alpha, beta"),
        ("{{ numbers.result.missing.deeper }}", "'missing' does not exist; available: alpha, beta"),
        ("{{ fetch.body.items[5] }}", "'5' does not exist; available: indexes 0..1"),
        ("{{ count.result.size }}", "'size' does not exist; available: (a int has no fields)"),
        (
            "{{ ghost.result }}",
            "'ghost' is not defined; in scope: count, fetch, nothing, numbers, word",
        ),
    ],
)
def test_missing_fields_raise_with_what_is_available(template: str, message: str) -> None:
    with pytest.raises(ReferenceResolutionError) as caught:
        ex.render(template, CTX)
    assert str(caught.value) == message


def test_bare_expressions_evaluate_natively_and_name_missing_fields() -> None:
    assert ex.evaluate("count.result > 2", CTX) is True
    assert ex.evaluate("word.result ~ '!'", CTX) == "hi!"
    with pytest.raises(ReferenceResolutionError, match="available: alpha, beta"):
        ex.evaluate("numbers.result.gamma > 1", CTX)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ word.result.__class__ }}",
        "{{ numbers.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ fetch['__class__'] }}",
        "x {{ ''.__class__ }} y",
    ],
)
def test_sandbox_refuses_access_to_python_internals(template: str) -> None:
    with pytest.raises((ReferenceResolutionError, SecurityError)):
        ex.render(template, CTX)


def test_sandbox_refuses_huge_ranges_and_is_immutable() -> None:
    with pytest.raises(OverflowError):
        ex.render("{{ range(10**9) | list }}", CTX)
    items = [1, 2]
    with pytest.raises((ReferenceResolutionError, SecurityError)):
        ex.render("{{ xs.append(3) }}", {"xs": items})
    assert items == [1, 2]


def test_invalid_syntax_is_a_value_error_naming_the_source() -> None:
    with pytest.raises(ValueError, match="invalid expression"):
        ex.compile_expression("count.result >")
    with pytest.raises(ValueError, match="invalid template"):
        ex.references("a {{ count.result + }} b")


def test_references_lists_roots_and_attribute_paths() -> None:
    refs = ex.references({"x": "{{ fetch.body.items[0] }}", "y": ["n={{ start.n }}", 3]})
    assert ("fetch", ("body", "items")) in refs
    assert ("start", ("n",)) in refs
    assert ex.expression_references("loop.index < start.n") == [
        ("loop", ("index",)),
        ("start", ("n",)),
    ]
    assert ex.references("no templates here") == []


def test_local_names_are_names_bound_inside_templates() -> None:
    source = "{% for row in fetch.body.items %}{% set v = row.id %}{{ v }}{% endfor %}"
    assert ex.local_names(source) == {"row", "v"}
    assert ex.local_names("{{ fetch.status }}") == set()


@given(
    st.one_of(
        st.integers(),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=5),
        st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers(), max_size=4),
    )
)
def test_whole_string_reference_round_trips_any_json_value(value: Any) -> None:
    assert ex.render("{{ src.result }}", {"src": {"result": value}}) == value


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("a.b[0].c", [("a", ("b",))]),
        ("x[\"a'b\"]", [("x", ("a'b",))]),  # a quote the fast reader's step pattern misses
        ("x['k'].y", [("x", ("k", "y"))]),
    ],
)
def test_plain_paths_read_and_evaluate_as_jinja_does(source: str, reads: list[Any]) -> None:
    context = {"a": {"b": [{"c": 1}]}, "x": {"a'b": 5, "k": {"y": 7}}}
    assert ex.expression_references(source) == reads
    jinja = ex._compile_jinja(source)
    assert ex.compile_expression(source)(context) == jinja(context)
