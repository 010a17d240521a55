"""The CLI as a user drives it: exit codes, JSON records, bad input answered clearly."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.clitools import Cli, write_workflow

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart" / "quickstart.yaml"
RECORD_KEYS = {
    "id", "workflow", "status", "finalization_path", "finalized_by", "error",
    "completion_failure", "last_started_block", "last_completed_block", "started_at",
    "ended_at", "duration_ms", "trace_span_count", "has_trace_spans", "cost_total", "tokens",
    "models", "output", "input", "marker_write_failures", "cancel_requested_at", "notes",
    "execution_data",
}  # fmt: skip


def test_run_quickstart_json_record(cli: Cli) -> None:
    result = cli.run("run", str(QUICKSTART), "--input", '{"count": 4}', "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert set(record) >= RECORD_KEYS
    assert record["status"] == "completed"
    assert record["finalization_path"] == "completed"
    assert record["output"] == {"total": 1 + 4 + 9 + 16}
    assert record["input"] == {"count": 4}
    assert record["last_completed_block"]["block_id"] == "done"
    assert record["duration_ms"] >= 1
    # 1 root + start, numbers, total, big, done + parallel + 4 iterations + 4 squares
    assert record["trace_span_count"] == 1 + 5 + 1 + 4 + 4
    assert "square" in result.stderr  # live progress went to stderr
    shown = cli.show(record["id"])
    assert shown["output"] == record["output"]
    listed = cli.runs("--status", "completed", "--workflow", "quickstart")
    assert [r["id"] for r in listed] == [record["id"]]


def test_failed_run_exits_1_and_names_the_block(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def explode():\n    raise ValueError('kaboom')\n")
    wf = write_workflow(
        tmp_path,
        "fails",
        """
        name: fails
        blocks:
          start: {type: start}
          explode: {type: function, call: "boom:explode"}
        connections: [start -> explode]
    """,
    )
    result = cli.run("run", str(wf), "--json", "--quiet")
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed"
    assert record["finalization_path"] == "force_failed"
    assert record["error"] == {"message": "ValueError: kaboom", "block_id": "explode"}
    assert record["last_completed_block"] == {
        **record["last_completed_block"],
        "block_id": "explode",
        "success": False,
    }


def test_pause_exits_3_then_resume_completes(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "approve",
        """
        name: approve
        blocks:
          start: {type: start}
          ask: {type: wait, for: input, message: "ship it?"}
          done: {type: response, output: {ok: "{{ ask.input.ok }}"}}
        connections: [start -> ask, ask -> done]
    """,
    )
    first = cli.run("run", str(wf), "--json", "--quiet")
    assert first.returncode == 3, first.stderr
    paused = json.loads(first.stdout)
    assert (paused["status"], paused["finalization_path"]) == ("paused", "paused")
    assert paused["paused"] == {"waiting_blocks": ["ask"], "message": "ship it?"}
    second = cli.run("resume", paused["id"], "--input", '{"ok": true}', "--json", "--quiet")
    assert second.returncode == 0, second.stderr
    done = json.loads(second.stdout)
    assert done["status"] == "completed"
    assert done["output"] == {"ok": True}
    again = cli.run("resume", paused["id"], "--input", "{}", "--json")
    assert again.returncode == 4
    assert json.loads(again.stdout)["error"]["code"] == "invalid_run_state"


def test_unknown_run_id_is_exit_4_with_a_code(cli: Cli) -> None:
    for command in (("show", "nope"), ("cancel", "nope")):
        result = cli.run(*command, "--json")
        assert result.returncode == 4, result.stderr
        assert json.loads(result.stdout)["error"]["code"] == "run_not_found"
        assert "nope" in result.stderr


def test_bad_input_exits_2_and_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    cases = {
        "malformed_json": ("--input", "{count: 3"),
        "wrong_type": ("--input", '{"count": "three"}'),
        "unknown_key": ("--input", '{"cuont": 3}'),
        "missing_file": ("--input", "@does-not-exist.json"),
    }
    for name, args in cases.items():
        result = cli.run("run", str(QUICKSTART), *args, "--json")
        assert result.returncode == 2, (name, result.stderr)
        assert json.loads(result.stdout)["error"]["code"] == "invalid_input", name
    assert cli.runs("--workflow", "quickstart") == []


def test_invalid_workflow_files_exit_2_naming_block_and_line(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "broken",
        """
        name: broken
        blocks:
          start: {type: start}
          mystery: {type: teleport}
        connections: [start -> mystery]
    """,
    )
    result = cli.run("run", str(wf))
    assert result.returncode == 2
    assert "mystery" in result.stderr and "teleport" in result.stderr
    assert "broken.yaml:5" in result.stderr

    checked = cli.run("validate", str(wf), "--json")
    assert checked.returncode == 2
    problems = json.loads(checked.stdout)["problems"]
    assert problems[0]["code"] == "unknown_block_type"
    assert (problems[0]["block_id"], problems[0]["line"]) == ("mystery", 5)

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nblocks: [\n")
    result = cli.run("validate", str(bad_yaml))
    assert result.returncode == 2 and "malformed YAML" in result.stderr
    assert cli.runs() == []


def test_runs_rejects_an_unknown_status(cli: Cli) -> None:
    result = cli.run("runs", "--status", "pending", "--json")
    assert result.returncode == 2
    assert "pending" in json.loads(result.stdout)["error"]["message"]


def test_schema_describes_the_format(cli: Cli) -> None:
    result = cli.run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "blocks" in schema["properties"]
    kinds = json.dumps(schema)
    for block_type in ("function", "parallel", "loop", "wait", "workflow", "agent"):
        assert f'"{block_type}"' in kinds


def test_resume_without_input_of_a_wait_that_is_read_exits_2(cli: Cli, tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "approve_strict",
        """
        name: approve_strict
        blocks:
          start: {type: start}
          ask: {type: wait, for: input}
          done: {type: response, output: {ok: "{{ ask.input.ok }}"}}
        connections: [start -> ask, ask -> done]
    """,
    )
    paused = json.loads(cli.run("run", str(wf), "--json", "--quiet").stdout)
    refused = cli.run("resume", paused["id"], "--json")
    assert refused.returncode == 2, refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "invalid_input"
    assert "waiting for input at block 'ask'" in error["message"]
    assert "--input" in error["message"]
    assert cli.show(paused["id"])["status"] == "paused"  # nothing changed on the run
    done = cli.run("resume", paused["id"], "--input", '{"ok": true}', "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"ok": True}
