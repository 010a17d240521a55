"""``workflow``: runs a child workflow as one block, inside the same run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowtrail.engine.blocks.base import BlockResult, Leaf, Values
from flowtrail.engine.events import Frame
from flowtrail.engine.outcome import ChildWorkflowFailed
from flowtrail.errors import BlockError
from flowtrail.model.definition import WorkflowBlock
from flowtrail.model.graph import Node
from flowtrail.model.limits import MAX_WORKFLOW_DEPTH
from flowtrail.status import RunStatus

if TYPE_CHECKING:
    from flowtrail.engine.scope import ScopeRun


class ChildWorkflow(Leaf):
    holds_slot = False  # the child's own blocks take the run's slots
    retried = False  # a child run is not repeated: its blocks have their own retries

    def prepare(self, node: Node, values: Values) -> Any:
        spec = node.spec
        assert isinstance(spec, WorkflowBlock)
        return values.render(spec.with_)

    async def execute(self, node: Node, inputs: Any, scope: ScopeRun) -> BlockResult:
        spec = node.spec
        assert isinstance(spec, WorkflowBlock)
        ex = scope.ex
        if ex.depth + 1 > MAX_WORKFLOW_DEPTH:
            raise BlockError(
                f"maximum workflow call depth ({MAX_WORKFLOW_DEPTH}) exceeded", node.id
            )
        child_wf = ex.workflow.children.get(spec.path)
        if child_wf is None:
            raise BlockError(f"child workflow {spec.path} was not loaded", node.id)
        child = ex.child(child_wf, inputs, (*scope.path, Frame(node.id, "workflow", 0)))
        result = await child.run()
        if result.status is RunStatus.COMPLETED:
            return BlockResult(result.output)
        if result.status is RunStatus.PAUSED:
            raise BlockError("a child workflow cannot pause for input yet", node.id)
        inner = result.error_path or ((result.error_block_id,) if result.error_block_id else ())
        if len(inner) > 1:
            # Failed in a grandchild: the message already says where; say it only once.
            message = result.error or "child workflow failed"
        else:
            where = f" at block '{inner[0]}'" if inner else ""
            message = f"child workflow '{child_wf.name}' failed{where}: {result.error}"
        raise ChildWorkflowFailed(message, node.id, (node.id, *inner))


KIND = ChildWorkflow()
