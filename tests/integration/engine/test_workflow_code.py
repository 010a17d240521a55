"""A workflow's Python code is imported per workflow folder: two folders that each hold a
``blocks.py`` run their own functions in one process, and importing never edits
``sys.path``. A module that stops the interpreter while it is imported is a broken
workflow, not a stopped program."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from flowtrail.errors import WorkflowValidationError
from flowtrail.model.compile import compile_file
from flowtrail.runner import Runner
from flowtrail.settings import Settings

WORKFLOW = """
name: {name}
blocks:
  start: {{type: start}}
  who: {{type: function, call: "blocks:who"}}
  helper: {{type: function, call: "tools.inner:who"}}
connections: ["start -> who", "start -> helper"]
"""


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    (folder / "tools").mkdir(parents=True)
    (folder / "blocks.py").write_text(f"def who():\n    return {name!r}\n", encoding="utf-8")
    (folder / "tools" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "tools" / "inner.py").write_text(
        "from . import helper\n\ndef who():\n    return helper.NAME\n", encoding="utf-8"
    )
    (folder / "tools" / "helper.py").write_text(f"NAME = {name + '-tools'!r}\n", encoding="utf-8")
    (folder / "flow.yaml").write_text(WORKFLOW.format(name=name), encoding="utf-8")
    return folder / "flow.yaml"


async def test_two_folders_with_the_same_module_name_run_their_own_code(tmp_path: Path) -> None:
    path_before = list(sys.path)
    first = compile_file(_folder(tmp_path, "first"))
    second = compile_file(_folder(tmp_path, "second"))
    runner = Runner(Settings(observer_grace_seconds=0.2), store=None)

    one = await runner.run(first)
    two = await runner.run(second)

    assert one.output == {"who": {"result": "first"}, "helper": {"result": "first-tools"}}
    assert two.output == {"who": {"result": "second"}, "helper": {"result": "second-tools"}}
    assert sys.path == path_before
    assert "blocks" not in sys.modules and "tools" not in sys.modules


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
        ("raise SystemExit('bye')\n", "SystemExit: bye"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("raise RuntimeError('broken at import')\n", "broken at import"),
    ],
)
def test_a_module_that_stops_python_on_import_is_an_invalid_workflow(
    tmp_path: Path, code: str, raised: str
) -> None:
    (tmp_path / "stopper.py").write_text(textwrap.dedent(code), encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(
        'name: x\nblocks:\n  start: {type: start}\n  f: {type: function, call: "stopper:go"}\n'
        'connections: ["start -> f"]\n',
        encoding="utf-8",
    )
    with pytest.raises(WorkflowValidationError) as caught:
        compile_file(tmp_path / "flow.yaml")
    (problem,) = caught.value.problems
    assert problem.code == "uncallable"
    assert problem.block_id == "f"
    assert "cannot import module 'stopper'" in problem.message
    assert raised in problem.message
