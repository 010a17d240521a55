"""Every template names something that exists and runs before it: the reference checks
of the compiler, once the whole graph is built."""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Mapping

from flowtrail.model import expressions
from flowtrail.model.blocks import block_templates, rules_of
from flowtrail.model.graph import Node, Scope, Upstream, find_node
from flowtrail.model.limits import clip
from flowtrail.model.messages import did_you_mean

GLOBAL_NAMES = frozenset({"vars", "env", "secrets", "run"})
Report = Callable[[str, str | None, tuple[str, ...], str], None]


class References:
    """Checks the references of a compiled graph, reporting through the compiler."""

    def __init__(
        self,
        root: Scope,
        all_ids: Mapping[str, tuple[str, ...]],
        inputs: Collection[str],
        report: Report,
        env: Collection[str] = (),
    ) -> None:
        self.root = root
        self.all_ids = all_ids
        self.inputs = inputs
        self.env = env  # the variables the workflow declares under `env:`
        self.problem = report

    def check_body(self, node: Node) -> None:
        for field, message, code in rules_of(node.spec).body_problems(node):
            self.problem(message, node.id, (*self.all_ids.get(node.id, ()), field), code)

    def check(
        self, scope: Scope, outer: list[tuple[Scope, str]], visible_outer: Upstream | None
    ) -> None:
        """Every template names something that exists and runs before it."""
        kinds = {s.nodes[c].type for s, c in outer}
        for node in scope.nodes.values():
            self.check_body(node)
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
                self.check(node.scope, [*outer, (scope, node.id)], before)

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
        if name == "env" and name not in local and attrs and attrs[0] not in self.env:
            declared = ", ".join(self.env) or "none"
            self.problem(
                f"'env.{attrs[0]}' is not declared: list it under the workflow's `env:` "
                f"(declared: {declared})",
                node.id,
                path,
                "bad_reference",
            )
            return
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
        fields = rules_of(target.spec).outputs
        if target.type == "start" and self.inputs:
            fields = frozenset(self.inputs)
        if fields is not None and attrs[0] not in fields and attrs[0] != "error":
            self.problem(
                f"'{name}.{attrs[0]}' does not exist; a {target.type} block "
                f"provides: {', '.join(sorted(fields))}",
                node.id,
                path,
                "bad_reference",
            )

    def _find(self, block_id: str) -> Node | None:
        return find_node(self.root, block_id)


class _Either:
    """Membership in any of several containers (a loop condition sees its body too)."""

    def __init__(self, *parts: Container[str]) -> None:
        self.parts = parts

    def __contains__(self, name: object) -> bool:
        return any(name in part for part in self.parts)
