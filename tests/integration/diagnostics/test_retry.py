"""Retry: a new run linked to the old one, reusing the completed steps (their spans say
``reused``), running what did not complete, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowtrail.errors import InputError, RunStateError
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import spans_of

CODE = """
import threading
from pathlib import Path

import flowtrail

HERE = Path(__file__).parent
LOCK = threading.Lock()

def _count(name):
    with LOCK, open(HERE / f"{name}.count", "a") as calls:
        calls.write("x")

def counted(name, value=None):
    _count(name)
    return value if value is not None else name

def flaky(name, value=None):
    _count(name)
    if (HERE / f"fail_{name}").exists():
        raise RuntimeError(f"{name} is down")
    return value if value is not None else name

def big(name):
    _count(name)
    return "x" * 10_000

def whoami(name):
    _count(name)
    step = flowtrail.current_step()
    return {
        "run_id": step.run_id,
        "block_id": step.block_id,
        "position": step.position,
        "attempt": step.attempt,
        "key": step.idempotency_key,
    }

async def awhoami(name):
    return whoami(name)
"""


def count(folder: Path, name: str) -> int:
    path = folder / f"{name}.count"
    return len(path.read_text()) if path.exists() else 0


def chain_def(*blocks: tuple[str, str]) -> dict[str, Any]:
    """``blocks``: (id, function) pairs run in a chain; each gets ``name: id``."""
    spec: dict[str, Any] = {"start": {"type": "start"}}
    connections, previous = [], "start"
    for block_id, fn in blocks:
        spec[block_id] = {"type": "function", "call": f"FNS:{fn}", "with": {"name": block_id}}
        connections.append(f"{previous} -> {block_id}")
        previous = block_id
    return {"name": "retried", "blocks": spec, "connections": connections}


def reused_names(trace: dict[str, Any]) -> set[str]:
    return {s["name"] for s in spans_of(trace) if s.get("reused")}


async def test_a_retry_reuses_what_completed_and_runs_the_rest(db, flow) -> None:
    fl = flow(chain_def(("a", "counted"), ("b", "flaky"), ("c", "counted")), CODE)
    (fl.folder / "fail_b").touch()
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    assert first.status is RunStatus.FAILED and first.error_block_id == "b"

    (fl.folder / "fail_b").unlink()
    second = await (await runner.retry(first.run_id)).result()

    assert second.status is RunStatus.COMPLETED
    assert second.output == {"result": "c"}
    assert (count(fl.folder, "a"), count(fl.folder, "b"), count(fl.folder, "c")) == (1, 2, 1)
    old, new = await db.get_run(first.run_id), await db.get_run(second.run_id)
    assert (new.retry_of, new.attempt, new.retry_from_block) == (first.run_id, 2, None)
    assert old.retried_by == second.run_id and old.attempt == 1
    assert new.snapshot_hash == old.snapshot_hash
    assert reused_names(new.execution_data["trace"]) == {"start", "a"}
    steps = {s.block_id: s for s in await db.list_steps(second.run_id)}
    assert steps["a"].status == "completed" and steps["a"].output == {"result": "a"}
    assert steps["a"].tries == 0  # reused, not run
    assert steps["b"].tries == 1


async def test_a_retry_of_a_retry_reuses_the_steps_of_both(db, flow) -> None:
    fl = flow(chain_def(("a", "counted"), ("b", "flaky"), ("c", "flaky")), CODE)
    runner = Runner(Settings(), db)
    (fl.folder / "fail_b").touch()
    first = await runner.run(fl.workflow)
    (fl.folder / "fail_b").rename(fl.folder / "fail_c")
    second = await (await runner.retry(first.run_id)).result()
    (fl.folder / "fail_c").unlink()
    third = await (await runner.retry(second.run_id)).result()

    assert [r.status for r in (first, second, third)] == [
        RunStatus.FAILED,
        RunStatus.FAILED,
        RunStatus.COMPLETED,
    ]
    assert (count(fl.folder, "a"), count(fl.folder, "b"), count(fl.folder, "c")) == (1, 2, 2)
    assert (await db.get_run(third.run_id)).attempt == 3
    trace = (await db.get_run(third.run_id)).execution_data["trace"]
    assert reused_names(trace) == {"start", "a", "b"}


async def test_only_the_failed_branch_of_a_parallel_runs_again(db, flow) -> None:
    fl = flow(
        {
            "name": "branches",
            "blocks": {
                "start": {"type": "start"},
                "fan": {
                    "type": "parallel",
                    "count": 4,
                    "blocks": {
                        "leaf": {
                            "type": "function",
                            "call": "FNS:flaky",
                            "with": {
                                "name": "leaf{{ parallel.index }}",
                                "value": "{{ parallel.index }}",
                            },
                        }
                    },
                },
            },
            "connections": ["start -> fan"],
        },
        CODE,
    )
    (fl.folder / "fail_leaf2").touch()
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    assert first.status is RunStatus.FAILED
    ran_first = [count(fl.folder, f"leaf{i}") for i in range(4)]

    (fl.folder / "fail_leaf2").unlink()
    second = await (await runner.retry(first.run_id)).result()

    assert second.status is RunStatus.COMPLETED
    assert second.output == {"results": [{"result": i} for i in range(4)]}
    ran = [count(fl.folder, f"leaf{i}") - ran_first[i] for i in range(4)]
    assert ran[2] == 1  # the failed branch ran again
    # a branch that completed before the failure halted the parallel is reused
    assert all(ran[i] == 0 for i in range(4) if ran_first[i] == 1 and i != 2)


async def test_from_reruns_that_block_and_everything_downstream(db, flow) -> None:
    fl = flow(chain_def(("a", "counted"), ("b", "counted"), ("c", "counted"), ("d", "flaky")), CODE)
    (fl.folder / "fail_d").touch()
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    (fl.folder / "fail_d").unlink()

    second = await (await runner.retry(first.run_id, from_block="b")).result()

    assert second.status is RunStatus.COMPLETED
    assert [count(fl.folder, x) for x in "abcd"] == [1, 2, 2, 2]
    new = await db.get_run(second.run_id)
    assert new.retry_from_block == "b"
    assert reused_names(new.execution_data["trace"]) == {"start", "a"}


async def test_from_a_block_inside_a_loop_reruns_the_loop_body_from_it(db, flow) -> None:
    fl = flow(
        {
            "name": "looped",
            "blocks": {
                "start": {"type": "start"},
                "lp": {
                    "type": "loop",
                    "count": 2,
                    "blocks": {
                        "x": {"type": "function", "call": "FNS:counted", "with": {"name": "x"}},
                        "y": {"type": "function", "call": "FNS:counted", "with": {"name": "y"}},
                    },
                    "connections": ["x -> y"],
                },
                "after": {"type": "function", "call": "FNS:flaky", "with": {"name": "after"}},
            },
            "connections": ["start -> lp", "lp -> after"],
        },
        CODE,
    )
    (fl.folder / "fail_after").touch()
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    (fl.folder / "fail_after").unlink()

    second = await (await runner.retry(first.run_id, from_block="y")).result()

    assert second.status is RunStatus.COMPLETED
    assert [count(fl.folder, n) for n in ("x", "y", "after")] == [2, 4, 2]


async def test_a_truncated_output_is_not_reused(db, flow) -> None:
    fl = flow(chain_def(("a", "big"), ("b", "flaky")), CODE)
    (fl.folder / "fail_b").touch()
    runner = Runner(Settings(max_step_output_bytes=4096), db)
    first = await runner.run(fl.workflow)
    (fl.folder / "fail_b").unlink()

    second = await (await runner.retry(first.run_id)).result()

    assert second.status is RunStatus.COMPLETED
    assert second.output == {"result": "b"}
    assert (count(fl.folder, "a"), count(fl.folder, "b")) == (2, 2)


async def test_a_function_knows_its_step_and_keeps_its_key_across_retries(db, flow) -> None:
    fl = flow(
        {
            "name": "who",
            "blocks": {
                "start": {"type": "start"},
                "lp": {
                    "type": "loop",
                    "count": 1,
                    "blocks": {
                        "me": {"type": "function", "call": "FNS:whoami", "with": {"name": "me"}},
                        "ame": {
                            "type": "function",
                            "call": "FNS:awhoami",
                            "with": {"name": "ame"},
                        },
                    },
                    "connections": ["me -> ame"],
                },
                "gate": {"type": "function", "call": "FNS:flaky", "with": {"name": "gate"}},
            },
            "connections": ["start -> lp", "lp -> gate"],
        },
        CODE,
    )
    (fl.folder / "fail_gate").touch()
    runner = Runner(Settings(), db)
    first = await runner.run(fl.workflow)
    (fl.folder / "fail_gate").unlink()
    second = await (await runner.retry(first.run_id, from_block="me")).result()

    assert second.status is RunStatus.COMPLETED
    mine = ("me", "ame")
    old_steps = {
        s.block_id: s.output["result"]
        for s in await db.list_steps(first.run_id)
        if s.block_id in mine
    }
    new_steps = {
        s.block_id: s.output["result"]
        for s in await db.list_steps(second.run_id)
        if s.block_id in mine
    }
    for block, fn_kind in (("me", "sync"), ("ame", "async")):
        old, new = old_steps[block], new_steps[block]
        assert old["position"] == new["position"] == "lp[0]", fn_kind
        assert (old["run_id"], old["attempt"]) == (first.run_id, 1)
        assert (new["run_id"], new["attempt"]) == (second.run_id, 2)
        assert old["key"] == new["key"] == f"{first.run_id}:lp[0]:{block}"


async def test_what_cannot_be_retried_is_refused(db, flow) -> None:
    fl = flow(chain_def(("a", "counted"), ("b", "flaky")), CODE)
    runner = Runner(Settings(), db)
    done = await runner.run(fl.workflow)
    with pytest.raises(RunStateError, match="completed"):
        await runner.retry(done.run_id)

    (fl.folder / "fail_b").touch()
    failed = await runner.run(fl.workflow)
    with pytest.raises(InputError, match="did you mean 'b'"):
        await runner.retry(failed.run_id, from_block="bb")
    assert (await db.get_run(failed.run_id)).retried_by is None  # nothing was written

    await (await runner.retry(failed.run_id)).result()
    with pytest.raises(RunStateError, match="already retried"):
        await runner.retry(failed.run_id)
