"""What ``retry --from`` runs again, and the ``recovery:`` field: pure model checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flowtrail.engine.events import Frame, containers_in, position_of
from flowtrail.errors import InputError
from flowtrail.model.compile import compile_definition
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.rerun import rerun_from

FN = {"type": "wait", "seconds": 0}


def compiled(doc: dict[str, Any]):  # type: ignore[no-untyped-def]
    return compile_definition(WorkflowDefinition.model_validate(doc))


WORKFLOW = {
    "name": "shape",
    "blocks": {
        "start": {"type": "start"},
        "a": FN,
        "side": FN,
        "lp": {
            "type": "loop",
            "count": 2,
            "blocks": {"x": FN, "y": FN, "z": FN},
            "connections": ["x -> y", "y -> z"],
        },
        "after": FN,
    },
    "connections": ["start -> a", "start -> side", "a -> lp", "lp -> after"],
}


def test_from_a_top_level_block_reruns_it_and_what_follows_with_bodies() -> None:
    again = rerun_from(compiled(WORKFLOW), "a")
    assert again.blocks == {"a", "lp", "x", "y", "z", "after"}
    assert again.whole == again.blocks
    assert again.covers("y", ["lp"])
    assert not again.covers("side", [])


def test_from_inside_a_loop_reruns_the_rest_of_the_body_and_what_follows() -> None:
    again = rerun_from(compiled(WORKFLOW), "y")
    assert again.blocks == {"y", "z", "lp", "after"}
    assert "lp" not in again.whole  # its body's upstream part is reused
    assert not again.covers("x", ["lp"])
    assert again.covers("z", ["lp"])


def test_an_unknown_block_is_refused_with_the_closest_names() -> None:
    with pytest.raises(InputError, match="no block 'aftr'; did you mean 'after'"):
        rerun_from(compiled(WORKFLOW), "aftr")


def test_positions_are_text_and_read_back() -> None:
    path = (Frame("lp", "loop", 3), Frame("par", "parallel", 0))
    assert position_of(path) == "lp[3]/par[0]"
    assert position_of(()) == ""
    assert containers_in("lp[3]/par[0]") == ["lp", "par"]
    assert containers_in("") == []


def test_recovery_is_validated() -> None:
    good = {**WORKFLOW, "recovery": {"attempts": 3, "backoff_seconds": 5}}
    recovery = WorkflowDefinition.model_validate(good).recovery
    assert recovery is not None and (recovery.attempts, recovery.backoff_seconds) == (3, 5)
    for bad in ({"attempts": 0}, {"attempts": 2, "backoff_seconds": -1}, {"backoff_seconds": 1}):
        with pytest.raises(ValidationError):
            WorkflowDefinition.model_validate({**WORKFLOW, "recovery": bad})
