"""What a block printed, shown under it by ``flowtrail show``.

The capture stores it on the block's span as ``logs`` (text) and ``logs_truncated``
(characters dropped at capture, only when some were). The first test builds such records
through the store (the contract, edge cases included); the second runs a real block."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus
from flowtrail.store import Finalization, NewRun, SqlStore
from tests.acceptance.clitools import Cli, write_workflow

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _span(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "function", "block_id": name, "status": "success",
            "duration_ms": 3, "children": [], **extra}  # fmt: skip


async def _record(store: SqlStore, run_id: str, children: list[dict[str, Any]]) -> None:
    await store.put_snapshot("h-logs", "logs", {"name": "logs"})
    await store.create_run(NewRun(run_id, "logs", "h-logs", RunStatus.RUNNING, "test", T0, {}))
    trace = {"name": "logs", "type": "workflow", "status": "success", "duration_ms": 9,
             "children": children}  # fmt: skip
    outcome = await store.finalize(
        run_id,
        Finalization(
            status=RunStatus.COMPLETED,
            path=FinalizationPath.COMPLETED,
            finalized_by=FinalizedBy.ENGINE,
            ended_at=T0 + timedelta(seconds=1),
            duration_ms=1000,
            execution_data={"trace": trace},
            has_trace_spans=True,
            trace_span_count=1 + len(children),
        ),
    )
    assert outcome.persisted


async def test_show_prints_captured_output_under_its_block(
    store: SqlStore, store_url: str, tmp_path: Path
) -> None:
    chatty = "\n".join(f"step {i} done" for i in range(1, 26)) + "\n"
    await _record(
        store,
        "run-logs-1",
        [
            _span("quiet"),
            _span("talks", logs="fetching https://example.test\n[warn] slow answer\n"),
            _span("chatty", logs=chatty, logs_truncated=5000),
        ],
    )
    cli = Cli(store_url, tmp_path)
    shown = await asyncio.to_thread(cli.run, "show", "run-logs-1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    tree = lines[next(i for i, ln in enumerate(lines) if "logs (workflow)" in ln) :]

    def after(name: str) -> list[str]:
        start = next(i for i, ln in enumerate(tree) if f" {name} (function)" in ln)
        return tree[start + 1 :]

    talks = after("talks")
    assert "output:" in talks[0]
    assert talks[1].endswith("fetching https://example.test")
    assert talks[2].endswith("[warn] slow answer")  # printed as is, not read as markup
    assert "chatty (function)" in talks[3]
    chat = after("chatty")
    assert [ln.split()[-3:] for ln in chat[1:11]] == [
        ["step", str(i), "done"] for i in range(1, 11)
    ]
    assert "… 15 more lines, 5000 characters dropped when captured, --json for all" in chat[11]
    assert not any("step 11 done" in ln for ln in tree)
    assert "output:" not in after("quiet")[0]
    record = cli.show("run-logs-1")  # --json keeps everything
    assert record["execution_data"]["trace"]["children"][2]["logs"] == chatty


def test_show_prints_what_a_real_block_printed(cli: Cli, tmp_path: Path) -> None:
    """End to end: the block prints 30 lines and logs a warning; ``show`` shows the first
    lines under it and says how many more ``--json`` holds."""
    (tmp_path / "noisy.py").write_text(
        "import logging\n"
        "def work():\n"
        "    for i in range(1, 31):\n"
        "        print(f'row {i} [ok]')\n"
        "    logging.getLogger('noisy').warning('almost done')\n"
        "    return 30\n"
    )
    wf = write_workflow(
        tmp_path,
        "noisy",
        """
        name: noisy
        blocks:
          start: {type: start}
          work: {type: function, call: "noisy:work"}
        connections: [start -> work]
        """,
    )
    ran = cli.run("run", str(wf), "--json", "--quiet")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    shown = cli.run("show", run_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if "success work (function)" in ln)
    assert "output:" in lines[at + 1]
    assert [ln.split()[-3:] for ln in lines[at + 2 : at + 12]] == [
        ["row", str(i), "[ok]"] for i in range(1, 11)
    ]
    assert "… 21 more lines, --json for all" in lines[at + 12]
    logs = cli.show(run_id)["execution_data"]["trace"]["children"][1]["logs"]
    assert logs.endswith("WARNING noisy: almost done\n")
