"""status.py: one vocabulary and one transition table for every writer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrail.status import (
    PATH_STATUS,
    TERMINAL_STATUSES,
    TRANSITIONS,
    FinalizationPath,
    FinalizedBy,
    RunStatus,
    can_transition,
    sources_for,
)

S = RunStatus


def test_the_vocabulary_is_exactly_the_specified_words() -> None:
    assert [s.value for s in RunStatus] == [
        "queued",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
        "crashed",
    ]
    assert {p.value for p in FinalizationPath} == {
        "completed",
        "fallback_completed",
        "force_failed",
        "cancelled",
        "paused",
        "crashed",
        "expired",
    }
    assert {b.value for b in FinalizedBy} == {"engine", "sweeper", "api", "reconciler"}


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(RunStatus)


def test_terminal_statuses_have_no_exits_and_are_the_only_ones_without() -> None:
    assert {S.COMPLETED, S.FAILED, S.CANCELLED, S.CRASHED} == TERMINAL_STATUSES
    for status in RunStatus:
        assert status.terminal == (status in TERMINAL_STATUSES)
        assert (TRANSITIONS[status] == frozenset()) == status.terminal
        for target in RunStatus:
            if status.terminal:
                assert not can_transition(status, target)


@pytest.mark.parametrize(
    ("target", "sources"),
    [
        (S.QUEUED, ()),
        (S.RUNNING, (S.QUEUED, S.PAUSED)),
        (S.PAUSED, (S.RUNNING,)),
        (S.COMPLETED, (S.RUNNING,)),
        (S.FAILED, (S.QUEUED, S.RUNNING, S.PAUSED)),
        (S.CANCELLED, (S.QUEUED, S.RUNNING, S.PAUSED)),
        (S.CRASHED, (S.RUNNING,)),
    ],
)
def test_sources_for(target: RunStatus, sources: tuple[RunStatus, ...]) -> None:
    assert sources_for(target) == sources
    assert all(not s.terminal for s in sources_for(target))


def test_running_and_paused_go_both_ways_and_cancelled_wins_from_anywhere_live() -> None:
    assert can_transition(S.RUNNING, S.PAUSED) and can_transition(S.PAUSED, S.RUNNING)
    assert not can_transition(S.CANCELLED, S.COMPLETED)
    assert not can_transition(S.COMPLETED, S.CANCELLED)
    assert not can_transition(S.QUEUED, S.COMPLETED)  # a run must have run to complete
    assert not can_transition(S.PAUSED, S.CRASHED)  # a paused run holds no worker


def test_every_finalization_path_writes_a_status_some_live_status_can_reach() -> None:
    assert set(PATH_STATUS) == set(FinalizationPath)
    for path, status in PATH_STATUS.items():
        assert sources_for(status), path
    assert PATH_STATUS[FinalizationPath.EXPIRED] is S.FAILED
    assert S.QUEUED in sources_for(PATH_STATUS[FinalizationPath.EXPIRED])
    assert PATH_STATUS[FinalizationPath.FALLBACK_COMPLETED] is S.COMPLETED
    assert PATH_STATUS[FinalizationPath.PAUSED] is S.PAUSED


@given(st.sampled_from(list(RunStatus)), st.sampled_from(list(RunStatus)))
def test_sources_for_agrees_with_can_transition(current: RunStatus, target: RunStatus) -> None:
    assert (current in sources_for(target)) == can_transition(current, target)
    assert current != target or not can_transition(current, target)  # no self-loops
