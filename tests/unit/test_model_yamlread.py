"""The plain YAML road (values straight from libyaml's events) reads every document it
accepts exactly as PyYAML's safe loader does, and hands everything else to the full road."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flowtrail.errors import WorkflowError
from flowtrail.model.loading import line_of, parse_document
from flowtrail.model.yamlread import LazyLines, NotPlain, full_document, plain_document

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    st.sampled_from(
        [
            "yes",
            "no",
            "on",
            "off",
            "~",
            "null",
            "0x1f",
            "0o17",
            "1_000",
            ".inf",
            "2001-12-14",
            "2001-12-14t21:59:43.10-05:00",
            "<<",
            "=",
            "1e3",
            "-.5",
        ]
    ),
)
_keys = st.one_of(st.text(min_size=0, max_size=12), st.integers(), st.booleans())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(_values, st.sampled_from([False, True, None]), st.sampled_from([None, "'", '"']))
def test_plain_road_reads_what_pyyaml_reads(
    value: Any, flow: bool | None, style: str | None
) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, default_style=style, sort_keys=False)
    expected = yaml.safe_load(text)
    try:
        got = plain_document(text)
    except NotPlain:
        got = full_document(text)[0]  # what parse_document falls back to
    assert _same(got, expected), text


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\n",  # an alias
        "base: &b {k: 1}\nd:\n  <<: *b\n  j: 2\n",  # a merge key
        "a: 1\na: 2\n",  # a duplicate key (reported with its line by the full road)
        "a: !!set {x, y}\n",  # a tagged collection
        "? [1, 2]\n: v\n",  # a complex key
        "a: !!python/name:os.system x\n",  # a tag the safe constructor refuses
        "a: 1\n---\nb: 2\n",  # two documents
        "a: [1, 2\n",  # malformed
        "v: " + "[" * 101 + "]" * 101 + "\n",  # past the nesting limit
    ],
)
def test_plain_road_gives_up_on_what_it_does_not_read(text: str) -> None:
    with pytest.raises(NotPlain):
        plain_document(text)


def test_full_road_still_reads_aliases_and_merge_keys() -> None:
    data, _ = parse_document("base: &b {k: 1}\nd:\n  <<: *b\n  j: 2\nl: &l [1]\nm: *l\n")
    assert data == {"base": {"k": 1}, "d": {"k": 1, "j": 2}, "l": [1], "m": [1]}


def test_plain_road_scalars_keep_their_types() -> None:
    got = plain_document("a: 2001-12-14\nb: 0x1f\nc: '7'\nd: ~\ne: !!str 5\nf: .nan\n")
    assert got["a"] == dt.date(2001, 12, 14)
    assert got["b"] == 31 and got["c"] == "7" and got["d"] is None and got["e"] == "5"
    assert math.isnan(got["f"])


def test_lines_of_a_plain_document_are_worked_out_when_asked() -> None:
    text = "name: w\nblocks:\n  start:\n    type: start\n  b:\n    type: function\n"
    data, positions = parse_document(text)
    assert isinstance(positions, LazyLines)
    assert data["blocks"]["b"]["type"] == "function"
    assert line_of(positions, ("blocks", "b", "type")) == 6
    assert line_of(positions, ("blocks", "b", "nowhere")) == 5


def test_an_error_in_a_plain_document_names_its_line(tmp_path: Any) -> None:
    from flowtrail.model.compile import compile_file

    file = tmp_path / "w.yaml"
    file.write_text(
        "name: w\nblocks:\n  start: {type: start}\n  r:\n    type: response\n"
        "    output: 1\n    colour: red\nconnections: [start -> r]\n"
    )
    with pytest.raises(WorkflowError) as caught:
        compile_file(file)
    (problem,) = caught.value.problems
    assert problem.line == 7 and "colour" in problem.message
