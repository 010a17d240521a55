"""``flowtrail show`` as people read it: the span tree, its cut, and the way to the error."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.acceptance.clitools import Cli, write_workflow


def test_show_says_what_it_cut_and_keeps_the_path_to_the_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "late.py").write_text(
        "def check(i):\n"
        "    if i == 299:\n"
        "        raise ValueError('the last one is bad')\n"
        "    return i\n"
    )
    wf = write_workflow(
        tmp_path,
        "late_failure",
        """
        name: late_failure
        blocks:
          start: {type: start}
          each:
            type: loop
            count: 300
            blocks:
              check: {type: function, call: "late:check", with: {i: "{{ loop.index }}"}}
        connections: [start -> each]
        """,
    )
    ran = cli.run("run", str(wf), "--quiet", "--json")
    assert ran.returncode == 1, ran.stderr
    record = cli.show(json.loads(ran.stdout)["id"])
    total = record["trace_span_count"]
    assert total == 1 + 1 + 1 + 300 * 2

    shown = cli.run("show", record["id"])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    # the failing iteration (#299, past the first 200 lines) and its block are shown
    assert "each #299 (iteration)" in text
    assert "the last one is bad" in text.split("each #299 (iteration)")[1]
    tree = text[text.index("failed late_failure (workflow)") :].splitlines()
    shown_spans = sum(1 for line in tree if re.match(r"^[│├└─ ]*(success|error|failed) ", line))
    assert shown_spans == 200 + 2  # the first 200 lines, then iteration 299 and its block
    assert f"… {total - shown_spans} more spans (--json for all)" in text


def test_show_names_the_way_through_child_workflows_to_the_error(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "deep.py").write_text("def explode():\n    raise ValueError('kaput')\n")
    write_workflow(
        tmp_path,
        "child",
        """
        name: child
        blocks:
          start: {type: start}
          boom: {type: function, call: "deep:explode"}
        connections: [start -> boom]
        """,
    )
    parent = write_workflow(
        tmp_path,
        "parent",
        """
        name: parent
        blocks:
          start: {type: start}
          call_child: {type: workflow, path: child.yaml}
        connections: [start -> call_child]
        """,
    )
    ran = cli.run("run", str(parent), "--quiet", "--json")
    assert ran.returncode == 1, ran.stderr
    run_id = json.loads(ran.stdout)["id"]

    shown = cli.run("show", run_id)
    assert shown.returncode == 0, shown.stderr
    error_row = next(line for line in shown.stdout.splitlines() if "kaput" in line)
    assert "(block boom, via call_child \u203a boom)" in error_row
