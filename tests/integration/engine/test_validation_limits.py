"""Files and inputs past the documented limits are refused with a clear error and a code,
never a traceback, a hang or a store error (issue 6, section 2)."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowtrail.errors import InputError, WorkflowError
from flowtrail.model.compile import compile_file
from flowtrail.model.inputs import validate_inputs
from flowtrail.model.limits import MAX_CONTAINER_DEPTH, MAX_NESTING
from flowtrail.model.loading import read_input
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.store import SqlStore
from flowtrail.store.records import RunFilter

HEAD = "name: limits\nblocks:\n  start: {type: start}\n"


def _laughs() -> bytes:
    lines = [HEAD, "vars:\n", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n")
        previous = name
    return "".join(lines).encode()


def _nested_loops(levels: int) -> bytes:
    def body(n: int, indent: str) -> str:
        if n == 0:
            return f"{indent}done: {{type: response, output: 1}}\n"
        return (
            f"{indent}l{n}:\n{indent}  type: loop\n{indent}  count: 1\n{indent}  blocks:\n"
            + body(n - 1, indent + "    ")
        )

    return (HEAD + body(levels, "  ") + f'connections: ["start -> l{levels}"]\n').encode()


def _json_doc(value: str) -> bytes:
    return (
        '{"name": "limits", "blocks": {"start": {"type": "start"}, '
        '"r": {"type": "response", "output": ' + value + '}}, "connections": ["start -> r"]}'
    ).encode()


# (case, file name, content, code, text the message must contain)
FILES: list[tuple[str, str, Callable[[], bytes], str, str]] = [
    (
        "latin1",
        "w.yaml",
        lambda: (HEAD + "description: café\n").encode("latin-1"),
        "not_utf8",
        "not UTF-8 text: byte 0xe9 on line 4",
    ),
    ("utf16_no_bom", "w.yaml", lambda: HEAD.encode("utf-16-le"), "not_utf8", "NUL bytes"),
    (
        "utf32_bad",
        "w.yaml",
        lambda: codecs.BOM_UTF32_LE + b"\xff\xff\xff\xff",
        "not_utf8",
        "not valid UTF-32",
    ),
    (
        "yaml_500_deep",
        "w.yaml",
        lambda: (HEAD + "vars: {a: " + "[" * 500 + "]" * 500 + "}\n").encode(),
        "too_deep",
        f"nested more than {MAX_NESTING} levels deep",
    ),
    (
        "json_1000_deep",
        "w.json",
        lambda: _json_doc("[" * 1000 + "]" * 1000),
        "too_deep",
        "nested 1003 levels deep",
    ),
    (
        "json_500_deep_unstorable",
        "w.json",
        lambda: _json_doc("[" * 480 + "]" * 480),
        "too_deep",
        f"at most {MAX_NESTING}",
    ),
    (
        "self_alias",
        "w.yaml",
        lambda: (HEAD + "vars: &a\n  b: *a\n").encode(),
        "too_deep",
        "alias *a refers to a value holding it",
    ),
    ("billion_laughs", "w.yaml", _laughs, "too_large", "expands to more than 100,000 values"),
    (
        "huge_int_yaml",
        "w.yaml",
        lambda: (HEAD + "vars: {a: " + "9" * 5000 + "}\n").encode(),
        "too_large",
        "more than 4,300 digits",
    ),
    (
        "huge_int_json",
        "w.json",
        lambda: _json_doc("9" * 5000),
        "too_large",
        "more than 4,300 digits",
    ),
    (
        "nul_in_name",
        "w.yaml",
        lambda: b'name: "a\\0b"\nblocks:\n  start: {type: start}\n',
        "invalid_value",
        "NUL character",
    ),
    (
        "nul_in_with",
        "w.yaml",
        lambda: (
            HEAD + '  r: {type: response, output: "a\\0"}\nconnections: ["start -> r"]\n'
        ).encode(),
        "invalid_value",
        "blocks.r.output: text holds",
    ),
    (
        "surrogate_in_with",
        "w.yaml",
        lambda: (
            HEAD + '  r: {type: response, output: "\\ud800"}\nconnections: ["start -> r"]\n'
        ).encode(),
        # libyaml refuses the escape itself, with its line
        "malformed_workflow",
        "invalid Unicode character escape",
    ),
    (
        "surrogate_in_id",
        "w.json",
        lambda: (
            b'{"name": "x", "blocks": {"start": {"type": "start"}, "\\udc00": {"type": "start"}}}'
        ),
        "invalid_value",
        "lone surrogate",
    ),
    (
        "infinite_wait",
        "w.yaml",
        lambda: (HEAD + '  w: {type: wait, seconds: .inf}\nconnections: ["start -> w"]\n').encode(),
        "invalid_value",
        "numbers must be finite",
    ),
    (
        "nan_retry",
        "w.yaml",
        lambda: (
            HEAD + "  f: {type: function, call: 'json:dumps', "
            "retry: {wait_seconds: .nan}}\nconnections: ['start -> f']\n"
        ).encode(),
        "invalid_value",
        "blocks.f.retry.wait_seconds: numbers must be finite",
    ),
    ("nan_json", "w.json", lambda: _json_doc("NaN"), "invalid_value", "NaN is not allowed"),
    (
        "huge_block_id",
        "w.json",
        lambda: (
            '{"name": "x", "blocks": {"start": {"type": "start"}, "'
            + "b" * 10_000_000
            + '": {"type": "start"}}}'
        ).encode(),
        "invalid_value",
        "10,000,000 characters long",
    ),
    (
        "huge_name",
        "w.yaml",
        lambda: ("name: " + "n" * 5000 + "\nblocks: {start: {type: start}}\n").encode(),
        "invalid_field",
        "at most 200 characters",
    ),
    ("200_nested_loops", "w.yaml", lambda: _nested_loops(200), "too_deep", "levels deep"),
    (
        "33_nested_loops",
        "w.yaml",
        lambda: _nested_loops(MAX_CONTAINER_DEPTH + 1),
        "too_deep",
        f"nest more than {MAX_CONTAINER_DEPTH} levels deep",
    ),
]


FILES += [
    (
        "parentheses_in_a_template",
        "w.yaml",
        lambda: (
            HEAD + '  r: {type: response, output: "{{ ' + "(" * 200 + "1" + ")" * 200 + ' }}"}\n'
            "connections: ['start -> r']\n"
        ).encode(),
        "invalid_expression",
        "nested",
    ),
    (
        "parentheses_in_a_while",
        "w.yaml",
        lambda: (
            HEAD + '  l: {type: loop, while: "' + "(" * 300 + "true" + ")" * 300 + '", '
            "blocks: {r: {type: response, output: 1}}}\nconnections: ['start -> l']\n"
        ).encode(),
        "invalid_expression",
        "nested",
    ),
    (
        "parallel_count_over_cap",
        "w.yaml",
        lambda: (
            HEAD + "  fan:\n    type: parallel\n    count: 1000000000\n    blocks:\n"
            "      r: {type: response, output: 1}\nconnections: ['start -> fan']\n"
        ).encode(),
        "over_cap",
        "`count` gives 1,000,000,000 branches, more than max_branches (1,000)",
    ),
    (
        "parallel_collection_over_cap",
        "w.yaml",
        lambda: (
            HEAD + "  fan:\n    type: parallel\n    collection: [1, 2, 3]\n    max_branches: 2\n"
            "    blocks:\n      r: {type: response, output: 1}\nconnections: ['start -> fan']\n"
        ).encode(),
        "over_cap",
        "`collection` gives 3 branches, more than max_branches (2)",
    ),
    (
        "loop_count_over_cap",
        "w.yaml",
        lambda: (
            HEAD + "  rep:\n    type: loop\n    count: '5000'\n"
            "    blocks:\n      r: {type: response, output: 1}\nconnections: ['start -> rep']\n"
        ).encode(),
        "over_cap",
        "`count` gives 5,000 iterations, more than max_iterations (1,000)",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "code", "text"), [c[1:] for c in FILES], ids=[c[0] for c in FILES]
)
def test_file_past_a_limit_is_an_invalid_workflow(
    tmp_path: Path, name: str, content: Callable[[], bytes], code: str, text: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content())
    began = time.monotonic()
    with pytest.raises(WorkflowError) as caught:
        compile_file(path)
    assert time.monotonic() - began < 30  # a hang guard, not a timing assertion
    problems = caught.value.problems
    assert any(p.code == code and text in p.message for p in problems), problems
    # Messages quote at most a short piece of any value (a 10 MB id printed took 22 s).
    assert len(str(caught.value)) < 2000


def test_utf16_and_utf8_with_a_bom_are_read(tmp_path: Path) -> None:
    for encoding in ("utf-16", "utf-8-sig", "utf-32"):
        path = tmp_path / f"{encoding}.yaml"
        path.write_bytes((HEAD.replace("limits", "café")).encode(encoding))
        assert compile_file(path).name == "café"


def test_a_12000_block_chain_validates(tmp_path: Path) -> None:
    """More than 100,000 values written out in full are not an alias bomb; the chain is
    also far deeper than Python's recursion limit."""
    lines = ["name: long\nblocks:\n  start: {type: start}\n"]
    lines += [f"  b{i}: {{type: response, output: {{i: {i}, k: [1, 2]}}}}\n" for i in range(12_000)]
    lines.append("connections:\n  - start -> b0\n")
    lines += [f"  - b{i} -> b{i + 1}\n" for i in range(11_999)]
    path = tmp_path / "w.yaml"
    path.write_text("".join(lines))
    workflow = compile_file(path)
    assert len(workflow.definition.blocks) == 12_001


def test_loops_nested_to_the_cap_validate(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_bytes(_nested_loops(MAX_CONTAINER_DEPTH))
    assert compile_file(path).name == "limits"


@pytest.mark.parametrize(
    ("given", "text"),
    [
        ("[" * 100_000, "nested 100000 levels deep"),
        ('{"a": NaN}', "NaN is not allowed"),
        ('{"a": -Infinity}', "-Infinity is not allowed"),
        ('{"a": ' + "1" * 5000 + "}", "more than 4,300 digits"),
        ('{"a": "x\\u0000"}', "input.a: text holds a NUL character"),
        ('{"a": ["\\ud800"]}', "input.a.0: text holds a lone surrogate"),
        ('{"a": 1', "--input is not valid JSON"),
    ],
)
def test_bad_input_text_is_an_input_error(given: str, text: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_inputs_of(read_input(given))
    assert text in str(caught.value)


def validate_inputs_of(value: Any) -> None:
    from flowtrail.model.definition import WorkflowDefinition

    validate_inputs(WorkflowDefinition.model_validate({"name": "x", "blocks": {}}), value)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("{}".encode("latin-1") + b"\xe9", "not UTF-8 text"),
        ('{"a": "é"}'.encode("utf-16"), None),
        ('{"a": "é"}'.encode("utf-16-le"), "NUL bytes"),
    ],
)
def test_input_file_encoding(tmp_path: Path, data: bytes, text: str | None) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(data)
    if text is None:
        assert read_input(f"@{path}") == {"a": "é"}
        return
    with pytest.raises(InputError, match=text):
        read_input(f"@{path}")


@pytest.mark.parametrize(
    "value", [{"a": "x\x00y"}, {"a": "\udc80"}, {"\x00": 1}, {"a": float("nan")}, {"a": [[[]]]}]
)
async def test_unstorable_input_is_refused_on_both_backends_before_anything_is_written(
    store: SqlStore, value: dict[str, Any]
) -> None:
    from flowtrail.model.compile import compile_definition
    from flowtrail.model.loading import definition_from_data

    if value == {"a": [[[]]]}:  # past the nesting cap, built without recursion
        deep: list[Any] = []
        for _ in range(MAX_NESTING + 5):
            deep = [deep]
        value = {"a": deep}
    workflow = compile_definition(
        definition_from_data(
            {
                "name": "storable",
                "blocks": {"start": {"type": "start"}, "r": {"type": "response", "output": 1}},
                "connections": ["start -> r"],
            }
        )
    )
    with pytest.raises(InputError):
        await Runner(Settings(observer_grace_seconds=0.2), store).start(workflow, value)
    assert await store.list_runs(RunFilter(None, None, 10)) == []


@pytest.mark.parametrize("bad", ["deep", "nan", "nul", "huge_int"])
def test_a_definition_built_in_python_is_held_to_the_same_limits(bad: str) -> None:
    """``WorkflowDefinition.model_validate`` skips ``definition_from_data``'s checks, so
    ``compile_definition`` makes them: a 300-deep value once validated and then could not
    be stored (pydantic's serializer stops at 255 levels)."""
    from flowtrail.errors import WorkflowValidationError
    from flowtrail.model.compile import compile_definition
    from flowtrail.model.definition import WorkflowDefinition

    value: Any = {"nan": float("nan"), "nul": "a\x00", "huge_int": 10**5000}.get(bad)
    if bad == "deep":
        value = []
        for _ in range(300):
            value = [value]
    definition = WorkflowDefinition.model_validate(
        {"name": "py", "vars": {"v": value}, "blocks": {"start": {"type": "start"}}}
    )
    with pytest.raises(WorkflowValidationError) as caught:
        compile_definition(definition)
    (problem,) = caught.value.problems
    assert problem.code == "invalid_value"
    assert problem.message.startswith("vars.v")
