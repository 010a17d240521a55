"""``flowtrail retry`` and ``show`` of a run still going, as a user runs them: real
processes, a real SIGKILL, both databases."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

from tests.acceptance.clitools import Cli, started, write_workflow

TOUCHING = """
import time
from pathlib import Path

HERE = Path(__file__).parent

def touch(name):
    with open(HERE / f"{name}.count", "a") as calls:
        calls.write("x")
    # "hang" makes the block hang after it touched its file, so the process can be
    # killed while this block is in flight
    if (HERE / f"hang_{name}").exists():
        time.sleep(60)
    return name

def tick(i):
    time.sleep(0.1)
    # "hold_ticks" keeps the loop from the third iteration on until the test lets go (or
    # kills the run), so a loaded machine cannot let the run end before it is looked at
    if i >= 2 and (HERE / "hold_ticks").exists():
        time.sleep(60)
    return i
"""

CHAIN = """
name: {name}
blocks:
  start: {{type: start}}
  a: {{type: function, call: "retry_blocks:touch", with: {{name: a}}}}
  b: {{type: function, call: "retry_blocks:touch", with: {{name: b}}}}
  c: {{type: function, call: "retry_blocks:touch", with: {{name: c}}}}
  d: {{type: function, call: "retry_blocks:touch", with: {{name: d}}}}
connections: [start -> a, a -> b, b -> c, c -> d]
"""

SLOW_LOOP = """
name: slowloop
blocks:
  start: {type: start}
  lp:
    type: loop
    count: 50
    blocks:
      t: {type: function, call: "retry_blocks:tick", with: {i: "{{ loop.index }}"}}
connections: [start -> lp]
"""


def count(folder: Path, name: str) -> int:
    path = folder / f"{name}.count"
    return len(path.read_text()) if path.exists() else 0


def wait_until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_run_retried_reuses_what_completed_and_reruns_the_block_in_flight(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "retry_blocks.py").write_text(TOUCHING)
    cli.env["FLOWTRAIL_LEASE_SECONDS"] = "1"
    wf = write_workflow(tmp_path, "killed", CHAIN.format(name="killed"))
    (tmp_path / "hang_c").touch()
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("c"), "killed")
        wait_until(lambda: count(tmp_path, "c") == 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    old_id = row["id"]
    # Any command finds the process gone once the lease has expired, and ends the run
    # crashed (the sweeper's check on this host).
    wait_until(lambda: cli.show(old_id)["status"] == "crashed")
    (tmp_path / "hang_c").unlink()

    result = cli.run("retry", old_id, "--json", "--quiet")

    assert result.returncode == 0, result.stderr
    new = json.loads(result.stdout)
    assert new["status"] == "completed"
    assert (new["retry_of"], new["attempt"]) == (old_id, 2)
    assert cli.show(old_id)["retried_by"] == new["id"]
    # completed before the kill: ran once in all; in flight: ran again; after: once
    assert [count(tmp_path, x) for x in "abcd"] == [1, 1, 2, 1]
    spans = {s["name"]: s for s in new["execution_data"]["trace"]["children"]}
    assert spans["a"]["reused"] is True and spans["b"]["reused"] is True
    assert "reused" not in spans["c"] and "reused" not in spans["d"]


def test_retry_refuses_what_it_cannot_retry(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "retry_blocks.py").write_text(TOUCHING)
    wf = write_workflow(tmp_path, "fine", CHAIN.format(name="fine"))
    done = cli.run("run", str(wf), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["id"]

    completed = cli.run("retry", run_id)
    assert completed.returncode == 4
    assert "completed: there is nothing to retry" in completed.stderr

    unknown = cli.run("retry", "no-such-run")
    assert unknown.returncode == 4  # like show, cancel and resume: an unknown run
    assert "no-such-run" in unknown.stderr

    (tmp_path / "hang_c").touch()
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("c"), "fine")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    running = cli.run("retry", row["id"])  # its lease (60 s) has not expired yet
    assert running.returncode == 4
    assert "only a crashed, failed or cancelled run can be retried" in running.stderr

    cli.run("cancel", row["id"])  # its process is gone: the cancel ends it
    assert cli.show(row["id"])["status"] == "cancelled"
    typo = cli.run("retry", row["id"], "--from", "cc", "--json")
    assert typo.returncode == 2
    assert "did you mean 'c'" in json.loads(typo.stdout)["error"]["message"]


def test_show_of_a_run_still_going_has_its_steps_so_far(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "retry_blocks.py").write_text(TOUCHING)
    (tmp_path / "hold_ticks").touch()
    wf = write_workflow(tmp_path, "slowloop", SLOW_LOOP)
    proc = cli.start("run", str(wf), "--quiet")
    try:
        row = cli.wait_for(started("t"), "slowloop")

        def progressed() -> bool:
            steps = cli.show(row["id"])["steps"]
            loop = next((s for s in steps if s["block_id"] == "lp"), None)
            return loop is not None and (loop["iterations_done"] or 0) >= 2

        wait_until(progressed)
        data = cli.show(row["id"])
        text = cli.run("show", row["id"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)

    assert data["status"] == "running"
    loop = next(s for s in data["steps"] if s["block_id"] == "lp")
    assert loop["iterations_total"] == 50 and loop["status"] == "running"
    ticks = [s for s in data["steps"] if s["block_id"] == "t"]
    assert {s["position"] for s in ticks} >= {"lp[0]", "lp[1]"}
    assert text.returncode == 0, text.stderr
    assert "steps so far" in text.stdout
    assert re.search(r"lp \(loop\) (\d+)/50", text.stdout), text.stdout
    assert "lp #0" in text.stdout and "t (function)" in text.stdout
