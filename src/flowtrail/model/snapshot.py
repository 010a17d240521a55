"""A run's definition snapshot: the workflow and every child workflow it calls, in one
self-contained document.

A worker on another machine must run exactly what was submitted, so the snapshot stored
with a run carries the child workflows too: rebuilding it never reads a workflow file.
Its shape is the root workflow's own document plus keys no workflow field can have::

    "$source":    the file it was loaded from (function modules beside it are looked up
                  in that folder, when the folder exists where the run executes)
    "$children":  {the path: text of a workflow block: the key of the child it runs}
    "$workflows": {key: child entry}   (root only: each child once, keyed by content)

A child entry is the child's document with its own ``$source`` and ``$children``. Children
are stored once each, by key, so a workflow that calls itself (loaded down to the depth
limit) stays linear in size. A snapshot written before child workflows were embedded has
no ``$children``; it is rebuilt as before, reading children from their files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowtrail.model.compile import compile_definition
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.graph import Workflow

SOURCE, CHILDREN, WORKFLOWS = "$source", "$children", "$workflows"


def content_hash(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot_of(workflow: Workflow) -> dict[str, Any]:
    """The self-contained document a run stores (see the module docstring)."""
    table: dict[str, dict[str, Any]] = {}
    keys: dict[int, str] = {}

    def entry(wf: Workflow) -> dict[str, Any]:
        document = dict(wf.document)
        if wf.source is not None:
            document[SOURCE] = str(wf.source)
        document[CHILDREN] = {path: key(child) for path, child in wf.children.items()}
        return document

    def key(wf: Workflow) -> str:
        found = keys.get(id(wf))
        if found is None:
            child = entry(wf)
            found = keys[id(wf)] = content_hash(child)
            table.setdefault(found, child)
        return found

    root = entry(workflow)
    if table:
        root[WORKFLOWS] = table
    return root


def snapshot_hash(snapshot: Mapping[str, Any]) -> str:
    """The key a snapshot is stored under: a hash of all of it, children included, so a
    changed child file makes a new snapshot instead of reusing the old one."""
    return content_hash(snapshot)


def workflow_from_snapshot(snapshot: Mapping[str, Any], source: Path | None = None) -> Workflow:
    """Rebuild the workflow a snapshot holds. ``source`` is used only for a snapshot that
    names none (written before snapshots recorded it). Raises
    ``WorkflowValidationError`` when it no longer compiles here (for instance a function
    module that cannot be imported in this process)."""
    document = dict(snapshot)
    table: Mapping[str, Any] = document.pop(WORKFLOWS, None) or {}
    built: dict[str, Workflow] = {}

    def build(entry: Mapping[str, Any], fallback: Path | None) -> Workflow:
        own = dict(entry)
        named = own.pop(SOURCE, None)
        children: Mapping[str, str] | None = own.pop(CHILDREN, None)
        definition = WorkflowDefinition.model_validate(own)
        where = Path(named) if named else fallback
        if children is None:  # an older snapshot: its children are read from disk
            return compile_definition(definition, source=where)
        return compile_definition(
            definition,
            source=where,
            children={path: child(key) for path, key in children.items()},
        )

    def child(key: str) -> Workflow:
        found = built.get(key)
        if found is None:
            found = built[key] = build(table[key], None)
        return found

    return build(document, source)
