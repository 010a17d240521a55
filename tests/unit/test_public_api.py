"""The public Python API is small and deliberate: its names are pinned, and every name,
status, path and setting says what it is for."""

from __future__ import annotations

import dataclasses
import inspect
from enum import StrEnum

import pytest

import flowtrail
from flowtrail.status import FinalizationPath, FinalizedBy, RunStatus

PUBLIC = {
    "BlockError", "CancelOutcome", "CurrentStep", "Event", "FinalizationPath", "FlowtrailError",
    "InputError", "Observer", "Prices", "QueueError", "Reported", "RunHandle",
    "RunNotFoundError", "RunRecord", "RunReport", "RunStateError", "RunStatus", "Runner",
    "Settings", "Store", "StoreError", "Tokens", "Workflow", "WorkflowDefinition",
    "WorkflowError", "cancel", "cancel_async", "compile_definition", "compile_file",
    "current_step", "get_run", "get_run_async", "load_workflow", "open_store", "resume",
    "resume_async", "retry", "retry_async", "run", "run_async", "submit", "submit_async",
    "Verdict", "why", "why_async",
}  # fmt: skip


def test_all_is_pinned_so_additions_are_deliberate() -> None:
    assert set(flowtrail.__all__) == PUBLIC
    assert len(flowtrail.__all__) == len(PUBLIC)  # no name listed twice
    for name in PUBLIC:
        assert hasattr(flowtrail, name), name


@pytest.mark.parametrize("name", sorted(PUBLIC - {"Observer"}))  # a type alias: no docstring
def test_every_public_name_has_its_own_docstring(name: str) -> None:
    obj = getattr(flowtrail, name)
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"flowtrail.{name} has no docstring of its own"


@pytest.mark.parametrize("enum", [RunStatus, FinalizationPath, FinalizedBy])
def test_every_enum_member_is_documented(enum: type[StrEnum]) -> None:
    docs = {member: member.__doc__ for member in enum}
    assert all(docs.values()), [m.value for m, d in docs.items() if not d]
    assert len(set(docs.values())) == len(docs), "members share a docstring"


def test_every_setting_is_documented() -> None:
    source = inspect.getsource(flowtrail.Settings)
    for f in dataclasses.fields(flowtrail.Settings):
        line = next(i for i, text in enumerate(source.splitlines()) if f"    {f.name}:" in text)
        after = source.splitlines()[line + 1].strip()
        assert after.startswith('"""'), f"Settings.{f.name} has no docstring under it"
