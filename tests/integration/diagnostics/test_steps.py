"""Steps: every block execution (and every loop and parallel) at its position, written on
the same round trip as the progress markers, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store.records import StepRecord
from tests.integration.diagnostics.support import backend_of, execute_sql, make_yaml_flow

CODE = """
import asyncio

async def step(x):
    return x

def big(n):
    return "x" * n

def boom():
    raise ValueError("no luck")

def leak(token):
    return {"seen": token}
"""

SECRET = "s3cr3t-token-value"


def chain(n: int) -> dict[str, Any]:
    blocks: dict[str, Any] = {"start": {"type": "start"}}
    connections, previous = [], "start"
    for i in range(n):
        blocks[f"b{i}"] = {"type": "function", "call": "FNS:step", "with": {"x": i}}
        connections.append(f"{previous} -> b{i}")
        previous = f"b{i}"
    return {"name": "chain", "blocks": blocks, "connections": connections}


def by_key(steps: list[StepRecord]) -> dict[tuple[str, str], StepRecord]:
    return {(s.position, s.block_id): s for s in steps}


async def test_a_chain_records_one_completed_step_per_block(db, flow) -> None:
    fl = flow(chain(20), CODE)
    before = db.round_trips
    report = await Runner(Settings(cancel_poll_seconds=60), db).run(fl.workflow)
    trips = db.round_trips - before
    steps = await db.list_steps(report.run_id)

    assert report.status is RunStatus.COMPLETED
    assert [s.block_id for s in steps] == ["start"] + [f"b{i}" for i in range(20)]
    assert all(s.position == "" and s.status == "completed" for s in steps)
    assert all(s.ended_at is not None and s.ended_at >= s.started_at for s in steps)
    assert [s.output for s in steps[1:]] == [{"result": i} for i in range(20)]
    assert {s.epoch for s in steps} == {1}
    assert all(s.tries == 1 and s.run_id == report.run_id for s in steps)
    # put_snapshot, create_run and finalize, then at most one write per block: the steps
    # ride on the marker writes, and the last ones on the terminal write.
    assert trips - 3 <= 20


async def test_a_wide_parallel_shares_its_writes(db, flow) -> None:
    fl = flow(
        {
            "name": "wide",
            "blocks": {
                "start": {"type": "start"},
                "fan": {
                    "type": "parallel",
                    "count": 200,
                    "blocks": {
                        "leaf": {
                            "type": "function",
                            "call": "FNS:step",
                            "with": {"x": "{{ parallel.index }}"},
                        }
                    },
                },
            },
            "connections": ["start -> fan"],
        },
        CODE,
    )
    before = db.round_trips
    report = await Runner(Settings(cancel_poll_seconds=60), db).run(fl.workflow)
    trips = db.round_trips - before
    steps = by_key(await db.list_steps(report.run_id))

    assert report.status is RunStatus.COMPLETED
    leaves = [s for (pos, bid), s in steps.items() if bid == "leaf"]
    assert sorted(s.position for s in leaves) == sorted(f"fan[{i}]" for i in range(200))
    assert all(s.status == "completed" for s in leaves)
    assert steps[("fan[7]", "leaf")].output == {"result": 7}
    fan = steps[("", "fan")]
    assert (fan.status, fan.iterations_total, fan.iterations_done) == ("completed", 200, 200)
    assert trips - 3 <= 20  # far fewer than one round trip per block (0.1)


async def test_positions_in_loops_parallels_and_child_workflows(db, tmp_path: Path) -> None:
    files = {
        "parent.yaml": """
            name: parent
            blocks:
              start: {type: start}
              lp:
                type: loop
                count: 2
                blocks:
                  par:
                    type: parallel
                    count: 2
                    blocks:
                      inner: {type: function, call: "FNS:step", with: {x: "{{ parallel.index }}"}}
              kid: {type: workflow, path: child.yaml}
              pick:
                type: condition
                branches: [{id: go, if: "true"}, {id: stop, else: true}]
              after: {type: function, call: "FNS:step", with: {x: done}}
            connections: [start -> lp, lp -> kid, kid -> pick, pick.go -> after]
        """,
        "child.yaml": """
            name: child
            blocks:
              start: {type: start}
              deep: {type: function, call: "FNS:step", with: {x: child}}
            connections: [start -> deep]
        """,
    }
    fl = make_yaml_flow(tmp_path / "wf", files, CODE, "parent.yaml")
    report = await Runner(Settings(), db).run(fl.workflow)
    steps = by_key(await db.list_steps(report.run_id))

    assert report.status is RunStatus.COMPLETED
    assert set(steps) == {
        ("", "start"),
        ("", "lp"),
        ("lp[0]", "par"),
        ("lp[1]", "par"),
        ("lp[0]/par[0]", "inner"),
        ("lp[0]/par[1]", "inner"),
        ("lp[1]/par[0]", "inner"),
        ("lp[1]/par[1]", "inner"),
        ("", "kid"),
        ("kid[0]", "start"),
        ("kid[0]", "deep"),
        ("", "pick"),
        ("", "after"),
    }
    assert steps[("lp[1]/par[1]", "inner")].output == {"result": 1}
    assert (steps[("", "lp")].iterations_total, steps[("", "lp")].iterations_done) == (2, 2)
    assert steps[("lp[0]", "par")].iterations_done == 2
    assert steps[("kid[0]", "deep")].output == {"result": "child"}
    assert steps[("", "pick")].handle == "go"
    assert all(s.status == "completed" for s in steps.values())


async def test_a_failed_step_keeps_its_error_and_no_output(db, flow) -> None:
    fl = flow(
        {
            "name": "fails",
            "blocks": {"start": {"type": "start"}, "bad": {"type": "function", "call": "FNS:boom"}},
            "connections": ["start -> bad"],
        },
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)
    bad = by_key(await db.list_steps(report.run_id))[("", "bad")]

    assert report.status is RunStatus.FAILED
    assert bad.status == "failed"
    assert bad.output is None
    assert bad.error is not None and "no luck" in bad.error


async def test_secrets_in_step_outputs_are_sealed(db, flow) -> None:
    fl = flow(
        {
            "name": "sealed",
            "blocks": {
                "start": {"type": "start"},
                "use": {
                    "type": "function",
                    "call": "FNS:leak",
                    "with": {"token": "{{ secrets.API_TOKEN }}"},
                },
            },
            "connections": ["start -> use"],
        },
        CODE,
    )
    report = await Runner(Settings(secrets={"API_TOKEN": SECRET}), db).run(fl.workflow)
    steps = await db.list_steps(report.run_id)

    assert report.status is RunStatus.COMPLETED
    use = by_key(steps)[("", "use")]
    assert SECRET not in repr(steps)
    assert "API_TOKEN" in use.output["result"]["seen"]  # sealed: a reference to the secret's name


async def test_a_large_output_is_truncated_with_its_metadata(db, flow) -> None:
    fl = flow(
        {
            "name": "large",
            "blocks": {
                "start": {"type": "start"},
                "huge": {"type": "function", "call": "FNS:big", "with": {"n": 50_000}},
                "small": {"type": "function", "call": "FNS:big", "with": {"n": 10}},
            },
            "connections": ["start -> huge", "huge -> small"],
        },
        CODE,
    )
    report = await Runner(Settings(max_step_output_bytes=4096), db).run(fl.workflow)
    steps = by_key(await db.list_steps(report.run_id))

    assert report.status is RunStatus.COMPLETED
    huge, small = steps[("", "huge")], steps[("", "small")]
    assert huge.output_truncated is True
    assert huge.output["truncated"] is True
    assert huge.output["original_bytes"] > 50_000
    assert huge.output["max_output_bytes"] == 4096
    assert huge.output["preview"].startswith('{"result":"xxx')
    assert small.output_truncated is False and small.output == {"result": "x" * 10}


async def test_a_refused_step_write_is_superseded_and_never_fails_the_run(db, flow) -> None:
    condition = "NEW.block_id = 'b1' AND NEW.status = 'running'"
    if backend_of(db.url) == "sqlite":
        statements = [
            "CREATE TRIGGER no_b1 BEFORE INSERT ON workflow_steps "
            f"WHEN {condition} BEGIN SELECT RAISE(ABORT, 'injected by no_b1'); END;"
        ]
    else:
        statements = [
            "CREATE FUNCTION no_b1_fn() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF {condition} THEN RAISE EXCEPTION 'injected by no_b1'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER no_b1 BEFORE INSERT ON workflow_steps "
            "FOR EACH ROW EXECUTE FUNCTION no_b1_fn()",
        ]
    await execute_sql(db.url, statements)
    fl = flow(chain(3), CODE)

    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED
    record = await db.get_run(report.run_id)
    assert record.marker_write_failures >= 1  # the write carrying b1's start was refused
    steps = by_key(await db.list_steps(report.run_id))
    assert [steps[("", f"b{i}")].status for i in range(3)] == ["completed"] * 3
    assert steps[("", "b1")].output == {"result": 1}  # its end superseded its start
