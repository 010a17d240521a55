"""``flowtrail run`` with a block that prints and logs: the command's own stdout stays the
JSON record, and the block's output is on its span (``show --json``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.clitools import Cli, write_workflow

CODE = """
import logging
import sys

def chatty():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    logging.getLogger("chatty").warning("a warning")
    return 1
"""


def test_block_output_goes_to_its_span_not_the_terminal(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "chatty_blocks.py").write_text(CODE)
    wf = write_workflow(
        tmp_path,
        "chatty",
        """
        name: chatty
        blocks:
          start: {type: start}
          talk: {type: function, call: "chatty_blocks:chatty"}
        connections: [start -> talk]
    """,
    )
    result = cli.run("run", str(wf), "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)  # nothing the block printed got in the way
    assert "to stdout" not in result.stderr and "to stderr" not in result.stderr
    assert "to stdout" not in result.stdout.splitlines()

    shown = cli.show(record["id"])
    spans = shown["execution_data"]["trace"]["children"]
    talk = next(s for s in spans if s.get("block_id") == "talk")
    assert talk["logs"] == "to stdout\nto stderr\nWARNING chatty: a warning\n"
