"""engine/state.py: pure planning over one scope (edges fired/pruned, cascades,
convergence, resume, exit output)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowtrail.engine.state import (
    ScopeState,
    chosen_edges,
    exit_output,
    ready_on_resume,
    settle,
)
from flowtrail.model.definition import ResponseBlock
from flowtrail.model.graph import Edge, Node, Scope

_SPEC = ResponseBlock(type="response")


def make_scope(ids: list[str], links: list[tuple[str, str | None, str]]) -> Scope:
    edges = tuple(Edge(i, src, handle, dst) for i, (src, handle, dst) in enumerate(links))
    incoming: dict[str, list[int]] = {b: [] for b in ids}
    outgoing: dict[str, list[int]] = {b: [] for b in ids}
    for e in edges:
        incoming[e.target].append(e.index)
        outgoing[e.source].append(e.index)
    nodes = {b: Node(b, b, "response", _SPEC, False) for b in ids}
    return Scope(
        nodes,
        edges,
        {k: tuple(v) for k, v in incoming.items()},
        {k: tuple(v) for k, v in outgoing.items()},
        tuple(b for b in ids if not incoming[b]),
    )


def edge_index(scope: Scope, src: str, dst: str, handle: str | None = None) -> int:
    (found,) = [
        e.index for e in scope.edges if (e.source, e.handle, e.target) == (src, handle, dst)
    ]
    return found


# -- chosen_edges -----------------------------------------------------------------------


def test_chosen_edges_by_outcome() -> None:
    scope = make_scope(
        ["c", "plain", "yes", "no", "err"],
        [("c", None, "plain"), ("c", "yes", "yes"), ("c", "no", "no"), ("c", "error", "err")],
    )
    plain, yes, no, err = (
        edge_index(scope, "c", "plain"),
        edge_index(scope, "c", "yes", "yes"),
        edge_index(scope, "c", "no", "no"),
        edge_index(scope, "c", "err", "error"),
    )
    assert chosen_edges(scope, "c", "yes", failed=False) == [plain, yes]
    assert chosen_edges(scope, "c", "no", failed=False) == [plain, no]
    assert chosen_edges(scope, "c", None, failed=False) == [plain]
    # A failure fires only error edges, whatever handle was asked for.
    assert chosen_edges(scope, "c", "yes", failed=True) == [err]


# -- settle -----------------------------------------------------------------------------


def test_settle_fires_edges_and_returns_ready_targets() -> None:
    scope = make_scope(["a", "b", "c"], [("a", None, "b"), ("a", None, "c")])
    state = ScopeState()
    ready = settle(scope, state, "a", [0, 1])
    assert ready == ["b", "c"]
    assert state.edges == {0: True, 1: True}
    assert state.skipped == set()


def test_settle_cascades_pruning_through_a_whole_branch() -> None:
    # cond -yes-> y1 -> y2 -> y3 ; cond -no-> n1
    scope = make_scope(
        ["cond", "y1", "y2", "y3", "n1"],
        [("cond", "yes", "y1"), ("y1", None, "y2"), ("y2", None, "y3"), ("cond", "no", "n1")],
    )
    state = ScopeState()
    fired = chosen_edges(scope, "cond", "no", failed=False)
    ready = settle(scope, state, "cond", fired)
    assert ready == ["n1"]
    assert state.skipped == {"y1", "y2", "y3"}
    assert all(state.edges[e.index] is False for e in scope.edges if e.target != "n1")


def test_convergence_block_waits_for_every_incoming_edge_and_is_ready_once() -> None:
    # cond -> (left | right) -> join
    scope = make_scope(
        ["cond", "left", "right", "join"],
        [
            ("cond", "l", "left"),
            ("cond", "r", "right"),
            ("left", None, "join"),
            ("right", None, "join"),
        ],
    )
    state = ScopeState()
    ready = settle(scope, state, "cond", chosen_edges(scope, "cond", "l", failed=False))
    # `right` is pruned and so is its edge into `join`, but `join` still waits for `left`.
    assert ready == ["left"]
    assert state.skipped == {"right"}
    assert state.edges[edge_index(scope, "right", "join")] is False
    state.finished.add("left")
    assert settle(scope, state, "left", [edge_index(scope, "left", "join")]) == ["join"]


def test_join_with_two_live_branches_is_ready_only_after_both() -> None:
    scope = make_scope(["a", "b", "j"], [("a", None, "j"), ("b", None, "j")])
    state = ScopeState()
    assert settle(scope, state, "a", [0]) == []
    assert settle(scope, state, "b", [1]) == ["j"]


def test_join_after_all_incoming_pruned_is_skipped_and_cascades() -> None:
    scope = make_scope(["a", "b", "j", "k"], [("a", None, "j"), ("b", None, "j"), ("j", None, "k")])
    state = ScopeState()
    assert settle(scope, state, "a", []) == []
    assert "j" not in state.skipped  # one edge still undecided
    assert settle(scope, state, "b", []) == []
    assert state.skipped == {"j", "k"}


def test_settle_never_readies_a_finished_or_skipped_block_again() -> None:
    scope = make_scope(["a", "b"], [("a", None, "b")])
    state = ScopeState(finished={"b"})
    assert settle(scope, state, "a", [0]) == []


# -- ready_on_resume -------------------------------------------------------------------


def test_ready_on_resume() -> None:
    scope = make_scope(
        ["start", "done", "wait", "loop", "next", "pending", "pruned", "blocked"],
        [
            ("start", None, "done"),
            ("done", None, "wait"),
            ("done", None, "loop"),
            ("done", None, "next"),
            ("wait", None, "pending"),
            ("done", None, "pruned"),
            ("pending", None, "blocked"),
        ],
    )
    state = ScopeState(
        outputs={"start": {}, "done": {"result": 1}},
        finished={"start", "done"},
        skipped={"pruned"},
        waiting={"wait"},
        containers={"loop": {"kind": "loop", "index": 2}},
        edges={0: True, 1: True, 2: True, 3: True, 5: False},
    )
    # Paused blocks and containers restart; `next` has every incoming edge decided and one
    # fired; `pending` waits on the paused `wait`; finished and skipped blocks stay done.
    assert ready_on_resume(scope, state) == ["wait", "loop", "next"]


def test_ready_on_resume_of_a_fresh_scope_is_its_entries() -> None:
    scope = make_scope(["a", "b"], [("a", None, "b")])
    assert ready_on_resume(scope, ScopeState()) == ["a"]


# -- exit_output ------------------------------------------------------------------------


def test_exit_output_single_exit() -> None:
    scope = make_scope(["a", "b"], [("a", None, "b")])
    state = ScopeState(outputs={"a": 1, "b": {"result": 2}}, finished={"a", "b"})
    assert exit_output(scope, state) == {"result": 2}


def test_exit_output_several_exits_that_ran_and_not_the_pruned_one() -> None:
    scope = make_scope(["a", "x", "y", "z"], [("a", None, "x"), ("a", None, "y"), ("a", "no", "z")])
    state = ScopeState(
        outputs={"a": 0, "x": {"result": "x"}, "y": {"error": "boom"}},
        finished={"a", "x", "y"},
        skipped={"z"},
    )
    assert exit_output(scope, state) == {"x": {"result": "x"}, "y": {"error": "boom"}}


def test_exit_output_when_no_exit_ran() -> None:
    scope = make_scope(["a", "b"], [("a", None, "b")])
    assert exit_output(scope, ScopeState(outputs={"a": 1}, finished={"a"})) == {}


def test_scope_state_json_round_trip() -> None:
    state = ScopeState(
        outputs={"a": {"result": [1, 2]}},
        edges={0: True, 3: False},
        finished={"a"},
        skipped={"b"},
        waiting={"w"},
        containers={"l": {"kind": "loop", "index": 1}},
    )
    data = state.to_json()
    assert data["edges"] == {"0": True, "3": False}  # JSON object keys are strings
    assert ScopeState.from_json(data) == state


# -- property: settle on random DAGs ---------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[Scope, dict[str, tuple[str | None, bool]]]:
    """A random DAG (edges only go from lower to higher index), with random handles, and
    for each block the outcome it will have: (handle chosen, failed)."""
    n = draw(st.integers(min_value=1, max_value=9))
    ids = [f"b{i}" for i in range(n)]
    links: list[tuple[str, str | None, str]] = []
    for j in range(1, n):
        for i in range(j):
            if draw(st.booleans()):
                links.append((ids[i], draw(st.sampled_from([None, "error", "x", "y"])), ids[j]))
    outcomes = {b: (draw(st.sampled_from([None, "x", "y"])), draw(st.booleans())) for b in ids}
    return make_scope(ids, links), outcomes


@settings(max_examples=300, deadline=None)
@given(dags())
def test_settle_on_random_dags(case: tuple[Scope, dict[str, tuple[str | None, bool]]]) -> None:
    scope, outcomes = case
    state = ScopeState()
    ready_count = dict.fromkeys(scope.nodes, 0)
    queue = list(scope.entries)
    for b in queue:
        ready_count[b] += 1

    def check_partition() -> None:
        for b in scope.nodes:
            is_ready = ready_count[b] > 0
            is_skipped = b in state.skipped
            undecided = any(i not in state.edges for i in scope.incoming[b])
            # exactly one of: ready (now or before), skipped, undecided
            assert [is_ready, is_skipped, undecided].count(True) == 1, b
            # a block is skipped iff it has incoming edges and every one was pruned
            pruned_all = bool(scope.incoming[b]) and all(
                state.edges.get(i) is False for i in scope.incoming[b]
            )
            assert is_skipped == pruned_all, b

    check_partition()
    while queue:
        block = queue.pop(0)
        state.finished.add(block)
        handle, failed = outcomes[block]
        fired = chosen_edges(scope, block, handle, failed)
        for b in settle(scope, state, block, fired):
            ready_count[b] += 1
            queue.append(b)
        check_partition()

    # Every block became ready at most once (convergence runs a join exactly once) ...
    assert all(count <= 1 for count in ready_count.values())
    # ... every block is decided: it ran or it was skipped, never both, never neither ...
    assert state.finished | state.skipped == set(scope.nodes)
    assert state.finished.isdisjoint(state.skipped)
    # ... and every edge is decided, fired exactly when its source ran and chose it.
    assert set(state.edges) == {e.index for e in scope.edges}
    for e in scope.edges:
        if e.source in state.skipped:
            assert state.edges[e.index] is False
        else:
            handle, failed = outcomes[e.source]
            assert state.edges[e.index] is (
                e.index in chosen_edges(scope, e.source, handle, failed)
            )
    # A block ran iff it is an entry or at least one incoming edge fired.
    for b in scope.nodes:
        ran = b in state.finished
        assert ran == (not scope.incoming[b] or any(state.edges[i] for i in scope.incoming[b]))
