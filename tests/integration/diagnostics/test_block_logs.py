"""What a function block prints (stdout, stderr, ``logging``) is captured per block,
bounded, masked, and stored on its span as ``logs`` (``logs_truncated`` when cut), on
both backends. Sync blocks run in worker threads, async ones on the loop, side by side."""

from __future__ import annotations

import asyncio
import logging

from flowtrail.engine.capture import MAX_LOG_CHARS
from flowtrail.runner import Runner
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.diagnostics.support import one_span, spans_of, trace_of

SECRET = "tok-1234567890"

CODE = f"""
import asyncio
import logging
import sys
import time

log = logging.getLogger("shop.blocks")

def sync_talk(i):
    print("sync", i, "starts")
    time.sleep(0.01)
    sys.stderr.write(f"sync {{i}} warns\\n")
    log.warning("sync %s logs", i)
    print("sync", i, "ends")
    return i

async def async_talk(i):
    print("async", i, "starts")
    await asyncio.sleep(0.01)
    log.error("async %s logs", i)
    print("async", i, "ends", file=sys.stderr)
    return i

def quiet():
    return "nothing said"

def flood(n):
    for k in range(n):
        print(f"line {{k:06d}}")

def leaky():
    print("the token is {SECRET}")

def fails():
    print("about to fail")
    raise ValueError("nope")

def stuck():
    print("before the hang", flush=True)
    time.sleep(5)
"""


def flow_of(blocks: dict, connections: list[str]) -> dict:
    return {
        "name": "talk",
        "blocks": {"start": {"type": "start"}, **blocks},
        "connections": connections,
    }


async def test_each_block_gets_its_own_output_in_order(db, flow) -> None:
    body = {
        "s": {"type": "function", "call": "FNS:sync_talk", "with": {"i": "{{ parallel.index }}"}},
        "a": {"type": "function", "call": "FNS:async_talk", "with": {"i": "{{ parallel.index }}"}},
    }
    fl = flow(
        flow_of(
            {
                "p": {"type": "parallel", "count": 4, "blocks": body},
                "q": {"type": "function", "call": "FNS:quiet"},
            },
            ["start -> p", "p -> q"],
        ),
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)

    assert report.status is RunStatus.COMPLETED, report.error
    trace = trace_of(await db.get_run(report.run_id))
    for branch in spans_of(trace, type="iteration"):
        i = branch["index"]
        by_id = {c["block_id"]: c for c in branch["children"]}
        assert by_id["s"]["logs"] == (
            f"sync {i} starts\nsync {i} warns\nWARNING shop.blocks: sync {i} logs\nsync {i} ends\n"
        )
        assert by_id["a"]["logs"] == (
            f"async {i} starts\nERROR shop.blocks: async {i} logs\nasync {i} ends\n"
        )
        assert "logs_truncated" not in by_id["s"]
    assert "logs" not in one_span(trace, block_id="q")  # said nothing: no key


async def test_output_is_bounded_and_says_how_much_was_dropped(db, flow) -> None:
    lines = 20_000  # 12 characters each: 240,000 in all
    fl = flow(
        flow_of(
            {"f": {"type": "function", "call": "FNS:flood", "with": {"n": lines}}}, ["start -> f"]
        ),
        CODE,
    )
    report = await Runner(Settings(), db).run(fl.workflow)

    span = one_span(trace_of(await db.get_run(report.run_id)), block_id="f")
    assert span["logs_truncated"] == lines * 12 - MAX_LOG_CHARS
    assert span["logs"].startswith("line 000000\nline 000001\n")
    assert span["logs"].endswith(f"line {lines - 1:06d}\n")  # the end is kept too
    assert f"[… {span['logs_truncated']} characters dropped …]" in span["logs"]
    assert len(span["logs"]) < MAX_LOG_CHARS + 100


async def test_secrets_are_masked_and_failing_or_timed_out_blocks_keep_theirs(db, flow) -> None:
    blocks = {
        "leak": {"type": "function", "call": "FNS:leaky"},
        "bad": {"type": "function", "call": "FNS:fails"},
        "fb": {"type": "function", "call": "FNS:stuck", "timeout": 0.3},
    }
    fl = flow(flow_of(blocks, ["start -> leak", "leak -> bad", "bad.error -> fb"]), CODE)
    report = await Runner(Settings(secrets={"API_TOKEN": SECRET}), db).run(fl.workflow)

    assert report.status is RunStatus.FAILED
    rec = await db.get_run(report.run_id)
    trace = trace_of(rec)
    assert one_span(trace, block_id="leak")["logs"] == "the token is ***\n"
    assert SECRET not in str(rec.execution_data)
    assert one_span(trace, block_id="bad")["logs"] == "about to fail\n"
    assert one_span(trace, block_id="fb")["logs"] == "before the hang\n"


async def test_writes_outside_blocks_are_left_alone(db, flow, capsys) -> None:
    fl = flow(
        flow_of(
            {"s": {"type": "function", "call": "FNS:sync_talk", "with": {"i": 0}}}, ["start -> s"]
        ),
        CODE,
    )
    await Runner(Settings(), db).run(fl.workflow)
    print("after the run")
    logging.getLogger("shop.blocks").warning("outside any block")
    await asyncio.sleep(0)

    out, err = capsys.readouterr()
    assert "after the run" in out
    assert "sync 0" not in out + err  # the block's own output went to its span
