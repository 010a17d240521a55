"""Turn a definition into a validated, frozen :class:`Workflow`, or say everything wrong."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from flowtrail.errors import Problem, WorkflowValidationError
from flowtrail.model import expressions
from flowtrail.model.blocks import Site, block_templates, rules_of
from flowtrail.model.definition import RESERVED_IDS, BlockBase, WorkflowBlock, WorkflowDefinition
from flowtrail.model.graph import ERROR_HANDLE, Edge, Node, Scope, Workflow
from flowtrail.model.limits import MAX_CONTAINER_DEPTH, MAX_WORKFLOW_DEPTH, clip, value_problems
from flowtrail.model.loading import line_of, read_definition
from flowtrail.model.messages import did_you_mean
from flowtrail.model.references import References
from flowtrail.model.startable import child_problems
from flowtrail.model.yamlread import Positions

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONN = re.compile(
    r"^\s*(?P<src>[A-Za-z_]\w*)(?:\.(?P<handle>[\w-]+))?\s*->\s*(?P<dst>[A-Za-z_]\w*)\s*$"
)


class _Compiler:
    def __init__(
        self,
        definition: WorkflowDefinition,
        positions: Positions,
        source: Path | None,
        depth: int,
        cache: dict[Path, Workflow],
        embedded: Mapping[str, Workflow] | None = None,
    ) -> None:
        self.positions = positions
        self.source = source
        self.filename = str(source) if source else None
        self.depth = depth
        self.cache = cache
        # Children already built from a stored snapshot: never read from disk.
        self.embedded = embedded
        self.problems: list[Problem] = []
        self.children: dict[str, Workflow] = {}
        self.all_ids: dict[str, tuple[str, ...]] = {}

    def problem(
        self,
        message: str,
        block_id: str | None = None,
        path: tuple[str, ...] = (),
        code: str = "invalid_workflow",
    ) -> None:
        line = line_of(self.positions, path)
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
            body = rules_of(spec).body(spec)
            if body is not None:
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
                if not body[0]:
                    self.problem(
                        f"empty {kind}: it has no blocks inside", block_id, bpath, "empty_container"
                    )
                inner = self.scope(*body, bpath, block_id)
            self.check_block(block_id, spec, bpath)
            nodes[block_id] = Node(
                block_id, spec.name or block_id, kind, spec, False, inner, _uses(spec), _light(spec)
            )
        edges = self.edges(nodes, connections, path)
        has_error = {e.source for e in edges if e.handle == ERROR_HANDLE}
        nodes = {k: replace(n, has_error_edge=k in has_error) for k, n in nodes.items()}
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
            allowed = rules_of(nodes[src].spec).handles(nodes[src].spec)
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
        folder = self.source.parent if self.source else Path.cwd()
        kind = getattr(spec, "type")  # noqa: B009 - every block model has it
        rules = rules_of(spec)
        if spec.retry is not None and not rules.retryable:
            self.problem(
                f"`retry` is not supported on a {kind} block; put it on the blocks inside "
                "or on the function/http/agent block that can fail",
                block_id,
                (*bpath, "retry"),
                "invalid_field",
            )
        rules.check(spec, Site(block_id, bpath, folder, self.problem, self.child))
        try:
            for source in rules.expressions(spec):
                expressions.compile_expression(source)
            for value, _inner in rules.templates(spec):
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

    def child(self, block_id: str, spec: WorkflowBlock, bpath: tuple[str, ...], base: Path) -> None:
        if self.embedded is not None:
            # Absent only where the depth limit stopped loading when it was submitted:
            # the run meets that limit at the same place.
            embedded = self.embedded.get(spec.path)
            if embedded is not None:
                self.children[spec.path] = embedded
                self.check_child(block_id, spec, bpath, embedded)
            return
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


def _uses(spec: BlockBase) -> frozenset[str]:
    """The top-level names a block's templates read (parsed once, here, not per run)."""
    names: set[str] = set()
    for value, _inner in block_templates(spec):
        with contextlib.suppress(ValueError, RecursionError):  # reported by check_block
            names.update(name for name, _attrs in expressions.references(value))
    return frozenset(names)


def _light(spec: BlockBase) -> bool:
    """Whether every template of a block is a plain reference (decided once, here)."""
    try:
        return all(expressions.is_light(value) for value, _inner in block_templates(spec))
    except (ValueError, RecursionError):  # reported by check_block
        return False


def compile_definition(
    definition: WorkflowDefinition,
    *,
    positions: Positions | None = None,
    source: Path | None = None,
    depth: int = 0,
    cache: dict[Path, Workflow] | None = None,
    children: Mapping[str, Workflow] | None = None,
) -> Workflow:
    """Validate a definition into a runnable :class:`Workflow`; raises
    :class:`WorkflowValidationError` listing every problem found. ``children`` (by the
    ``path:`` of the workflow blocks) are used as they are instead of loading the files."""
    compiler = _Compiler(
        definition, positions or {}, source, depth, {} if cache is None else cache, children
    )
    if positions is None:  # built in Python, perhaps without definition_from_data's checks
        document = definition.model_dump(by_alias=True, exclude_none=True)
        for path, reason in value_problems(document, keys=True):
            compiler.problem(
                f"{'.'.join(clip(p, 40) for p in path)}: {reason}", None, path, "invalid_value"
            )
        if compiler.problems:
            raise WorkflowValidationError(compiler.problems)
    root = compiler.scope(definition.blocks, definition.connections, (), None)
    if not compiler.problems:
        compiler.check_start(root)
        references = References(
            root, compiler.all_ids, definition.inputs, compiler.problem, definition.env
        )
        references.check(root, [], None)
    if compiler.problems:
        raise WorkflowValidationError(compiler.problems)
    return Workflow(definition, root, source, compiler.children)


def compile_file(
    path: str | Path, *, depth: int = 0, cache: dict[Path, Workflow] | None = None
) -> Workflow:
    """Load, validate and compile a workflow file (YAML or JSON) and the child workflows
    it calls. Raises ``WorkflowError`` naming every problem with its block and line."""
    file = Path(path).resolve()
    with _collector_paused():
        definition, positions = read_definition(file)
        cache = {} if cache is None else cache
        return compile_definition(
            definition, positions=positions, source=file, depth=depth, cache=cache
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading a file makes a great many small objects and no garbage cycles: Python's
    cycle collector would walk every one of them again and again (a 10,000-block file
    read 2.5x slower per block than a 100-block one), so it waits until the end."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
