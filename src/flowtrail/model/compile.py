"""Turn a definition into a validated, frozen :class:`Workflow`, or say everything wrong."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Container, Iterator, Mapping
from pathlib import Path
from typing import Any

from flowtrail.errors import Problem, WorkflowValidationError
from flowtrail.model import expressions
from flowtrail.model.definition import (
    RESERVED_IDS,
    AgentBlock,
    BlockBase,
    ConditionBlock,
    FunctionBlock,
    HttpBlock,
    LoopBlock,
    ParallelBlock,
    ResponseBlock,
    RouterBlock,
    WaitBlock,
    WorkflowBlock,
    WorkflowDefinition,
)
from flowtrail.model.graph import ERROR_HANDLE, Edge, Node, Scope, Upstream, Workflow, find_node
from flowtrail.model.imports import resolve_call as resolve_call  # the engine's door too
from flowtrail.model.limits import (
    MAX_CONTAINER_DEPTH,
    MAX_WORKFLOW_DEPTH,
    clip,
    value_problems,
)
from flowtrail.model.loading import Positions, read_definition
from flowtrail.model.messages import did_you_mean
from flowtrail.model.startable import (
    argument_problems,
    cap_problems,
    child_problems,
    while_problems,
)

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONN = re.compile(
    r"^\s*(?P<src>[A-Za-z_]\w*)(?:\.(?P<handle>[\w-]+))?\s*->\s*(?P<dst>[A-Za-z_]\w*)\s*$"
)
GLOBAL_NAMES = frozenset({"vars", "env", "secrets", "run"})
RETRYABLE = frozenset({"function", "http", "agent"})

# Fields each block type is known to produce; None means "any" (start without inputs,
# child workflows, responses).
OUTPUT_FIELDS: dict[str, frozenset[str] | None] = {
    "function": frozenset({"result"}),
    "http": frozenset({"status", "headers", "body"}),
    "agent": frozenset({"content", "model", "tokens"}),
    "condition": frozenset({"branch"}),
    "router": frozenset({"route"}),
    "loop": frozenset({"results"}),
    "parallel": frozenset({"results"}),
    "wait": frozenset({"waited_seconds", "input"}),
    "response": None,
    "workflow": None,
}


class _Compiler:
    def __init__(
        self,
        definition: WorkflowDefinition,
        positions: Positions,
        source: Path | None,
        depth: int,
        cache: dict[Path, Workflow],
    ) -> None:
        self.definition = definition
        self.positions = positions
        self.source = source
        self.filename = str(source) if source else None
        self.depth = depth
        self.cache = cache
        self.problems: list[Problem] = []
        self.children: dict[str, Workflow] = {}
        self.all_ids: dict[str, tuple[str, ...]] = {}
        self.root_scope: Scope | None = None

    def problem(
        self,
        message: str,
        block_id: str | None = None,
        path: tuple[str, ...] = (),
        code: str = "invalid_workflow",
    ) -> None:
        line = None
        while path:
            if path in self.positions:
                line = self.positions[path]
                break
            path = path[:-1]
        self.problems.append(Problem(message, block_id, line, self.filename, code))

    def scope(
        self,
        blocks: Mapping[str, BlockBase],
        connections: list[str],
        path: tuple[str, ...],
        container: str | None,
    ) -> Scope:
        nodes: dict[str, Node] = {}
        for block_id, spec in blocks.items():
            bpath = (*path, "blocks", block_id)
            if not _ID.match(block_id):
                self.problem(
                    "block ids must be letters, digits and _, not starting with a digit",
                    block_id,
                    bpath,
                    "invalid_id",
                )
                continue
            if block_id in RESERVED_IDS:
                self.problem(f"'{block_id}' is a reserved name", block_id, bpath, "invalid_id")
                continue
            if block_id in self.all_ids:
                self.problem(
                    "duplicate block id (ids are unique across the whole workflow)",
                    block_id,
                    bpath,
                    "duplicate_id",
                )
                continue
            self.all_ids[block_id] = bpath
            kind = getattr(spec, "type")  # noqa: B009 - every block model has it
            if container is not None and kind == "start":
                self.problem("a start block belongs at the top level", block_id, bpath)
            inner: Scope | None = None
            if isinstance(spec, LoopBlock | ParallelBlock):
                nesting = sum(1 for part in bpath if part == "blocks")
                if nesting > MAX_CONTAINER_DEPTH:
                    self.problem(
                        f"loops and parallels nest more than {MAX_CONTAINER_DEPTH} levels deep "
                        "here; flatten them or move the inner part into a child workflow",
                        block_id,
                        bpath,
                        "too_deep",
                    )
                    continue
                if not spec.blocks:
                    self.problem(
                        f"empty {kind}: it has no blocks inside", block_id, bpath, "empty_container"
                    )
                inner = self.scope(spec.blocks, spec.connections, bpath, block_id)
            self.check_block(block_id, spec, bpath)
            nodes[block_id] = Node(
                block_id, spec.name or block_id, kind, spec, False, inner, _uses(spec)
            )
        edges = self.edges(nodes, connections, path)
        has_error = {e.source for e in edges if e.handle == ERROR_HANDLE}
        nodes = {
            k: Node(n.id, n.name, n.type, n.spec, k in has_error, n.scope, n.uses)
            for k, n in nodes.items()
        }
        incoming: dict[str, list[int]] = {k: [] for k in nodes}
        outgoing: dict[str, list[int]] = {k: [] for k in nodes}
        for e in edges:
            incoming[e.target].append(e.index)
            outgoing[e.source].append(e.index)
        entries = tuple(k for k in nodes if not incoming[k])
        scope = Scope(
            nodes,
            tuple(edges),
            {k: tuple(v) for k, v in incoming.items()},
            {k: tuple(v) for k, v in outgoing.items()},
            entries,
            container,
        )
        self.check_cycles(scope, path)
        return scope

    def edges(
        self, nodes: Mapping[str, Node], connections: list[str], path: tuple[str, ...]
    ) -> list[Edge]:
        edges: list[Edge] = []
        seen: set[tuple[str, str | None, str]] = set()
        for i, text in enumerate(connections):
            cpath = (*path, "connections", str(i))
            m = _CONN.match(text)
            if m is None:
                self.problem(
                    f"connection {clip(repr(text), 120)} must look like "
                    "'source[.handle] -> target'",
                    None,
                    cpath,
                    "invalid_connection",
                )
                continue
            src, handle, dst = m["src"], m["handle"], m["dst"]
            bad = False
            for end in (src, dst):
                if end not in nodes:
                    where = "in this container" if path else "at the top level"
                    self.problem(
                        f"connection {clip(repr(text), 120)} names block '{clip(end)}', which "
                        f"does not exist {where}{did_you_mean(end, nodes)}",
                        end,
                        cpath,
                        "missing_block",
                    )
                    bad = True
            if bad:
                continue
            allowed = handles(nodes[src])
            if handle is not None and handle not in allowed:
                names = ", ".join(sorted(h for h in allowed if h)) or "none"
                self.problem(
                    f"connection {text!r}: block '{src}' has no handle '{handle}' "
                    f"(handles: {names}){did_you_mean(handle, (h for h in allowed if h))}",
                    src,
                    cpath,
                    "unknown_handle",
                )
                continue
            if nodes[dst].type == "start":
                self.problem(
                    f"connection {text!r} leads into the start block",
                    dst,
                    cpath,
                    "invalid_connection",
                )
                continue
            if (src, handle, dst) in seen:
                continue
            seen.add((src, handle, dst))
            edges.append(Edge(len(edges), src, handle, dst))
        return edges

    def check_cycles(self, scope: Scope, path: tuple[str, ...]) -> None:
        # Kahn's algorithm: whatever cannot be ordered lies on (or behind) a cycle.
        indegree = {b: len(scope.incoming[b]) for b in scope.nodes}
        queue = [b for b, n in indegree.items() if n == 0]
        while queue:
            block = queue.pop()
            for idx in scope.outgoing[block]:
                target = scope.edges[idx].target
                indegree[target] -= 1
                if indegree[target] == 0:
                    queue.append(target)
        stuck = {b for b, n in indegree.items() if n > 0}
        if not stuck:
            return
        # Walk backwards inside the stuck set until a block repeats: that is a cycle.
        current = min(stuck)
        trail: list[str] = []
        while current not in trail:
            trail.append(current)
            current = next(
                scope.edges[i].source
                for i in scope.incoming[current]
                if scope.edges[i].source in stuck
            )
        cycle = list(reversed(trail[trail.index(current) :]))
        cycle.append(cycle[0])
        self.problem(
            (
                f"cycle inside the body of {scope.container_id}: {' -> '.join(cycle)} (the "
                "loop repeats its body; connections inside it must not loop back)"
                if scope.container_id
                else f"cycle outside a loop: {' -> '.join(cycle)} (use a loop block to repeat work)"
            ),
            cycle[0],
            (*path, "connections"),
            "cycle",
        )

    def check_start(self, root: Scope) -> None:
        starts = [n.id for n in root.nodes.values() if n.type == "start"]
        if len(starts) != 1:
            self.problem(
                f"a workflow needs exactly one start block (found {len(starts)})",
                None,
                ("blocks",),
                "missing_start",
            )
            return
        for entry in root.entries:
            if entry != starts[0]:
                self.problem(
                    "block has no incoming connection, so it would never run; "
                    f"connect it from '{starts[0]}' or another block",
                    entry,
                    self.all_ids.get(entry, ()),
                    "unreachable_block",
                )

    def check_block(self, block_id: str, spec: BlockBase, bpath: tuple[str, ...]) -> None:
        base = self.source.parent if self.source else Path.cwd()
        kind = getattr(spec, "type")  # noqa: B009 - every block model has it
        if spec.retry is not None and kind not in RETRYABLE:
            self.problem(
                f"`retry` is not supported on a {kind} block; put it on the blocks inside "
                "or on the function/http/agent block that can fail",
                block_id,
                (*bpath, "retry"),
                "invalid_field",
            )
        if isinstance(spec, FunctionBlock):
            try:
                fn = resolve_call(spec.call, base)
            except ValueError as exc:
                self.problem(str(exc), block_id, (*bpath, "call"), "uncallable")
            else:
                for message in argument_problems(fn, spec.with_):
                    self.problem(message, block_id, (*bpath, "with"), "bad_argument")
        elif isinstance(spec, ConditionBlock):
            ids = [b.id for b in spec.branches]
            if len(set(ids)) != len(ids):
                self.problem("condition branch ids must be unique", block_id, bpath)
            if ERROR_HANDLE in ids:
                self.problem(
                    "a branch cannot be called 'error' (that is the error handle)", block_id, bpath
                )
            if any(b.else_ for b in spec.branches[:-1]):
                self.problem("`else` must be the last branch", block_id, bpath)
        elif isinstance(spec, RouterBlock):
            if len(set(spec.routes)) != len(spec.routes):
                self.problem("router routes must be unique", block_id, bpath)
            if ERROR_HANDLE in spec.routes:
                self.problem(
                    "a route cannot be called 'error' (that is the error handle)", block_id, bpath
                )
        elif isinstance(spec, WorkflowBlock):
            self.child(block_id, spec, bpath, base)
        elif isinstance(spec, LoopBlock | ParallelBlock):
            self.check_cap(block_id, spec, bpath)
        try:
            for source, _bare in _expressions(spec):
                expressions.compile_expression(source)
            for value, _inner in block_templates(spec):
                expressions.compile_all(value)  # unknown filters fail here, not mid-run
        except ValueError as exc:
            self.problem(str(exc), block_id, bpath, "invalid_expression")
        except RecursionError:  # Jinja's parser and compiler recurse once per nesting level
            self.problem(
                "an expression is nested too deeply to compile (simplify it, or compute the "
                "value in a function block)",
                block_id,
                bpath,
                "invalid_expression",
            )

    def check_cap(
        self, block_id: str, spec: LoopBlock | ParallelBlock, bpath: tuple[str, ...]
    ) -> None:
        for field, message in cap_problems(spec):
            self.problem(message, block_id, (*bpath, field), "over_cap")

    def child(self, block_id: str, spec: WorkflowBlock, bpath: tuple[str, ...], base: Path) -> None:
        target = (base / spec.path).resolve()
        if target in self.cache:
            self.children[spec.path] = self.cache[target]
            return
        if self.depth >= MAX_WORKFLOW_DEPTH:
            return  # recursion is checked again (and enforced) at run time
        try:
            child = compile_file(target, depth=self.depth + 1, cache=self.cache)
            self.cache.setdefault(target, child)
            self.children[spec.path] = child
            self.check_child(block_id, spec, bpath, child)
        except WorkflowValidationError as exc:
            for p in exc.problems:
                self.problem(f"child workflow {spec.path}: {p}", block_id, (*bpath, "path"), p.code)
        except Exception as exc:
            self.problem(
                f"child workflow {spec.path}: {exc}",
                block_id,
                (*bpath, "path"),
                "invalid_child_workflow",
            )

    def check_child(
        self, block_id: str, spec: WorkflowBlock, bpath: tuple[str, ...], child: Workflow
    ) -> None:
        for where, message, code in child_problems(spec, child):
            self.problem(message, block_id, (*bpath, *where), code)

    def check_first_while(self, node: Node) -> None:
        if isinstance(node.spec, LoopBlock) and node.scope is not None:
            for message in while_problems(node.spec, node.scope.nodes):
                self.problem(
                    message, node.id, (*self.all_ids.get(node.id, ()), "while"), "bad_reference"
                )

    def check_references(
        self, scope: Scope, outer: list[tuple[Scope, str]], visible_outer: Upstream | None
    ) -> None:
        """Every template names something that exists and runs before it."""
        kinds = {s.nodes[c].type for s, c in outer}
        for node in scope.nodes.values():
            self.check_first_while(node)
            before = Upstream(scope, node.id, visible_outer)
            inner_ids = set(node.scope.nodes) if node.scope else set()
            for value, sees_inner in block_templates(node.spec):
                visible: Container[str] = _Either(inner_ids, before) if sees_inner else before
                names = kinds | ({node.type} if sees_inner else set())
                try:
                    refs = expressions.references(value)
                    local = expressions.local_names(value)
                except (ValueError, RecursionError):
                    continue  # already reported by check_block
                for root_name, attrs in refs:
                    self.check_reference(node, root_name, attrs, visible, names, local)
            if node.scope is not None:
                self.check_references(node.scope, [*outer, (scope, node.id)], before)

    def check_reference(
        self,
        node: Node,
        name: str,
        attrs: tuple[str, ...],
        visible: Container[str],
        containers: set[str],
        local: set[str],
    ) -> None:
        path = self.all_ids.get(node.id, ())
        if name in GLOBAL_NAMES or name in local or name in expressions.ENV.globals:
            return
        if name in ("loop", "parallel"):
            if name not in containers:
                self.problem(
                    f"'{name}.*' is only available inside a {name} block",
                    node.id,
                    path,
                    "bad_reference",
                )
            return
        if name not in self.all_ids:
            self.problem(
                f"reference to '{clip(name)}', which is not a block in this workflow"
                f"{did_you_mean(name, self.all_ids)}",
                node.id,
                path,
                "bad_reference",
            )
            return
        if name not in visible:
            self.problem(
                f"reference to '{name}', which does not run before this block "
                "(connect it upstream)",
                node.id,
                path,
                "bad_reference",
            )
            return
        target = self._find(name)
        if target is None or not attrs:
            return
        fields = OUTPUT_FIELDS.get(target.type)
        if target.type == "start" and self.definition.inputs:
            fields = frozenset(self.definition.inputs)
        if fields is not None and attrs[0] not in fields and attrs[0] != "error":
            self.problem(
                f"'{name}.{attrs[0]}' does not exist; a {target.type} block "
                f"provides: {', '.join(sorted(fields))}",
                node.id,
                path,
                "bad_reference",
            )

    def _find(self, block_id: str) -> Node | None:
        return None if self.root_scope is None else find_node(self.root_scope, block_id)


class _Either:
    """Membership in any of several containers (a loop condition sees its body too)."""

    def __init__(self, *parts: Container[str]) -> None:
        self.parts = parts

    def __contains__(self, name: object) -> bool:
        return any(name in part for part in self.parts)


def _uses(spec: BlockBase) -> frozenset[str]:
    """The top-level names a block's templates read (parsed once, here, not per run)."""
    names: set[str] = set()
    for value, _inner in block_templates(spec):
        with contextlib.suppress(ValueError, RecursionError):  # reported by check_block
            names.update(name for name, _attrs in expressions.references(value))
    return frozenset(names)


def handles(node: Node) -> set[str | None]:
    spec = node.spec
    if node.type == "start":
        return {None}
    found: set[str | None] = {None, ERROR_HANDLE}
    if isinstance(spec, ConditionBlock):
        found |= {b.id for b in spec.branches}
    elif isinstance(spec, RouterBlock):
        found |= set(spec.routes)
    return found


def _expressions(spec: BlockBase) -> Iterator[tuple[str, bool]]:
    if isinstance(spec, ConditionBlock):
        for b in spec.branches:
            if b.if_ is not None:
                yield b.if_, True
    elif isinstance(spec, RouterBlock):
        yield spec.pick, True
    elif isinstance(spec, LoopBlock):
        for cond in (spec.while_, spec.do_while):
            if cond is not None:
                yield cond, True


def block_templates(spec: BlockBase) -> Iterator[tuple[Any, bool]]:
    """Every templated value of a block, and whether it may see the block's own body."""
    if isinstance(spec, FunctionBlock | WorkflowBlock):
        yield spec.with_, False
    elif isinstance(spec, HttpBlock):
        yield [spec.url, spec.headers, spec.params, spec.json_, spec.body], False
    elif isinstance(spec, AgentBlock):
        yield [spec.prompt, spec.system, spec.model, spec.base_url, spec.api_key], False
    elif isinstance(spec, ResponseBlock):
        yield spec.output, False
    elif isinstance(spec, WaitBlock):
        yield [spec.seconds, spec.message], False
    elif isinstance(spec, LoopBlock):
        yield [spec.count, spec.for_each], False
        for cond in (spec.while_, spec.do_while):
            if cond is not None:
                yield "{{ " + cond + " }}", True
    elif isinstance(spec, ParallelBlock):
        yield [spec.count, spec.collection], False
    elif isinstance(spec, ConditionBlock):
        yield ["{{ " + b.if_ + " }}" for b in spec.branches if b.if_ is not None], False
    elif isinstance(spec, RouterBlock):
        yield "{{ " + spec.pick + " }}", False


def compile_definition(
    definition: WorkflowDefinition,
    *,
    positions: Positions | None = None,
    source: Path | None = None,
    depth: int = 0,
    cache: dict[Path, Workflow] | None = None,
) -> Workflow:
    """Validate a definition into a runnable :class:`Workflow`; raises
    :class:`WorkflowValidationError` listing every problem found."""
    compiler = _Compiler(definition, positions or {}, source, depth, {} if cache is None else cache)
    if positions is None:  # built in Python, perhaps without definition_from_data's checks
        document = definition.model_dump(by_alias=True, exclude_none=True)
        for path, reason in value_problems(document, keys=True):
            compiler.problem(
                f"{'.'.join(clip(p, 40) for p in path)}: {reason}", None, path, "invalid_value"
            )
        if compiler.problems:
            raise WorkflowValidationError(compiler.problems)
    root = compiler.scope(definition.blocks, definition.connections, (), None)
    compiler.root_scope = root
    if not compiler.problems:
        compiler.check_start(root)
        compiler.check_references(root, [], None)
    if compiler.problems:
        raise WorkflowValidationError(compiler.problems)
    return Workflow(definition, root, source, compiler.children)


def compile_file(
    path: str | Path, *, depth: int = 0, cache: dict[Path, Workflow] | None = None
) -> Workflow:
    file = Path(path).resolve()
    definition, positions = read_definition(file)
    cache = {} if cache is None else cache
    return compile_definition(
        definition, positions=positions, source=file, depth=depth, cache=cache
    )
