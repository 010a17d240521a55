"""Property-based fuzzing of what ``flowtrail validate`` and ``--input`` read: random
documents mixing valid blocks and garbage, odd Unicode, deep nesting and huge numbers.
Whatever comes in, the answer is a workflow or a flowtrail error whose every problem has
a code: never another exception, never a hang."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowtrail.errors import InputError, WorkflowError
from flowtrail.model.compile import compile_definition, compile_file
from flowtrail.model.definition import BLOCK_TYPES
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.loading import definition_from_data, read_input

FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=10),  # the hang guard: any single example past it fails
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

odd_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "\x00",
            "\ud800",
            "a\udfffb",
            "[/x]",
            "{{ ",
            "{{ start }}",
            "{% for %}",
            "{{ " + "(" * 300 + "1" + ")" * 300 + " }}",
            "é" * 300,
            "x" * 5000,
            "9" * 5000,
            ".inf",
            "NaN",
            "-> ->",
            "start -> a",
            "a.error -> b",
        ]
    ),
)
numbers = st.one_of(
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.sampled_from([5000, 400, 64]).map(lambda digits: -(10**digits)),  # past int-str limits
    st.sampled_from([1e308, -0.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)
    ),
    max_leaves=20,
)
json_values = st.recursive(  # what JSON text can hold (no integers past the int-str limit)
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), odd_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)
    ),
    max_leaves=20,
)
ids = st.one_of(st.sampled_from(["start", "a", "b", "loop", "c1", "1bad", "x y"]), odd_text)
FIELDS = [
    "name",
    "call",
    "with",
    "url",
    "method",
    "model",
    "prompt",
    "branches",
    "routes",
    "pick",
    "count",
    "for_each",
    "while",
    "do_while",
    "max_iterations",
    "collection",
    "max_branches",
    "max_concurrency",
    "seconds",
    "for",
    "output",
    "path",
    "retry",
    "timeout",
    "blocks",
    "connections",
    "retires",
]
SAFE = {  # fields whose values would touch the outside world get harmless ones
    "call": st.sampled_from(
        [
            "json:dumps",
            "fuzz_blocks:quick",
            "fuzz_blocks:nope",
            "nomod_zz:f",
            "bad",
            ":",
            "fuzz_blocks:quick.x",
        ]
    ),
    "path": st.sampled_from(["child.yaml", "missing.yaml", "bad.yaml", "", "."]),
    "url": st.just("http://127.0.0.1:9/never-called"),
}


@st.composite
def blocks(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block_id in draw(st.lists(ids, max_size=5)):
        block: dict[str, Any] = {"type": draw(st.one_of(st.sampled_from(BLOCK_TYPES), odd_text))}
        for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
            if field == "blocks" and depth < 2:
                block[field] = draw(blocks(depth + 1))
            elif field == "connections":
                block[field] = draw(st.lists(odd_text, max_size=3))
            else:
                block[field] = draw(SAFE.get(field, values))
        out[block_id] = draw(st.one_of(st.just(block), values)) if depth else block
    return out


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": draw(odd_text), "blocks": {"start": {"type": "start"}}}
    doc["blocks"].update(draw(blocks()))
    edges = [f"{a} -> {b}" for a in doc["blocks"] for b in doc["blocks"] if a != b]
    doc["connections"] = draw(
        st.lists(st.one_of(st.sampled_from(edges or ["x"]), odd_text), max_size=5)
    )
    for key in draw(st.lists(st.sampled_from(["vars", "inputs", "timeout", "nam"]), max_size=2)):
        doc[key] = draw(values)
    return doc


def _deep(n: int, kind: str) -> str:
    return "a: " + "[" * n + "]" * n if kind == "yaml" else "[" * n + "]" * n


def as_bytes(doc: dict[str, Any], form: str) -> bytes | None:
    """The document as a file, or ``None`` when it cannot be written as one (an integer
    past Python's int-string limit): then it goes in as a dict, as the Python API takes it."""
    try:
        if form == "json":
            return json.dumps(doc).encode()  # NaN, surrogates and all
        try:
            return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
        except (yaml.YAMLError, UnicodeError):
            return json.dumps(doc).encode()
    except ValueError:
        return None


def check_validate(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        compile_file(path)
    except WorkflowError as exc:
        assert exc.problems, "a workflow error lists its problems"
        for problem in exc.problems:
            assert problem.code and problem.message
            assert len(problem.message) < 5000  # values are quoted short


@FUZZ
@given(doc=documents(), form=st.sampled_from(["json", "yaml", "dict"]))
def test_any_document_validates_or_gets_coded_problems(
    tmp_path: Path, doc: dict[str, Any], form: str
) -> None:
    (tmp_path / "fuzz_blocks.py").write_text("def quick(x=1):\n    return x\n")
    (tmp_path / "child.yaml").write_text("name: c\nblocks: {start: {type: start}}\n")
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe\x00")
    content = as_bytes(doc, form) if form != "dict" else None
    if content is not None:
        check_validate(tmp_path / f"w.{form}", content)
        return
    try:
        compile_definition(definition_from_data(doc), source=tmp_path / "w.yaml")
    except WorkflowError as exc:
        assert exc.problems and all(p.code and p.message for p in exc.problems)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.tuples(st.integers(0, 400), st.sampled_from(["yaml", "json"])).map(
            lambda p: _deep(*p).encode()
        ),
        st.sampled_from(
            ["&a [*a]", "a: &a {b: *a}", "a: !!python/object:os.system x", "{", "- -"]
        ).map(str.encode),
    )
)
def test_any_bytes_validate_or_get_coded_problems(tmp_path: Path, raw: bytes) -> None:
    check_validate(tmp_path / "w.yaml", raw)


DEFINITION = definition_from_data(
    {
        "name": "takes",
        "inputs": {"n": {"type": "integer"}, "tag": {"type": "string", "default": "x"}},
        "blocks": {"start": {"type": "start"}},
    }
)


@FUZZ
@given(
    text=st.one_of(
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.dictionaries(odd_text, json_values, max_size=3).map(json.dumps),
        st.text(max_size=100),
        st.integers(0, 200_000).map(lambda n: "[" * n),
        st.sampled_from(['{"n": NaN}', '{"n": 1e999}', '{"n": ' + "7" * 5000 + "}", "@"]),
    )
)
def test_any_input_text_is_accepted_or_an_input_error(text: str) -> None:
    try:
        values_read = read_input(text)
        accepted = validate_inputs(DEFINITION, values_read)
    except InputError as exc:
        assert exc.code == "invalid_input" and str(exc)
        return
    assert isinstance(accepted["n"], int)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in accepted.values())
