"""Read a workflow file (YAML or JSON) into pydantic models, remembering file lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flowtrail.errors import Problem, WorkflowParseError, WorkflowValidationError
from flowtrail.model.definition import BLOCK_TYPES, WorkflowDefinition

Positions = dict[tuple[str, ...], int]


def _walk_positions(
    node: yaml.Node, path: tuple[str, ...], out: Positions, problems: list[Problem]
) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(
                        f"duplicate key '{key}'",
                        block_id=key if path and path[-1] == "blocks" else None,
                        line=key_node.start_mark.line + 1,
                        code="duplicate_id" if path and path[-1] == "blocks" else "duplicate_key",
                    )
                )
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            _walk_positions(value_node, (*path, key), out, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_positions(item, (*path, str(i)), out, problems)


def parse_document(text: str, *, filename: str | None = None) -> tuple[Any, Positions]:
    """Parse YAML (JSON is YAML too, but gets JSON's own error messages)."""
    positions: Positions = {}
    stripped = text.lstrip()
    if (filename and filename.endswith(".json")) or stripped.startswith("{"):
        try:
            return json.loads(text), positions
        except json.JSONDecodeError as exc:
            raise WorkflowParseError(
                [
                    Problem(
                        f"malformed JSON: {exc.msg}",
                        line=exc.lineno,
                        file=filename,
                        code="malformed_workflow",
                    )
                ]
            ) from exc
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise WorkflowParseError(
            [
                Problem(
                    f"malformed YAML: {reason}", line=line, file=filename, code="malformed_workflow"
                )
            ]
        ) from exc
    problems: list[Problem] = []
    if node is not None:
        _walk_positions(node, (), positions, problems)
    if problems:
        raise WorkflowValidationError([_in_file(p, filename) for p in problems])
    return data, positions


def _in_file(problem: Problem, filename: str | None) -> Problem:
    if filename is None or problem.file is not None:
        return problem
    return Problem(problem.message, problem.block_id, problem.line, filename, problem.code)


def _block_of(loc: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """The innermost block id in a pydantic error location, and the location without the
    union tags pydantic inserts (so it matches the file's own path)."""
    block: str | None = None
    clean: list[str] = []
    i = 0
    while i < len(loc):
        part = loc[i]
        clean.append(part)
        if part == "blocks" and i + 1 < len(loc):
            block = loc[i + 1]
            clean.append(block)
            i += 2
            if i < len(loc) and loc[i] in BLOCK_TYPES:
                i += 1  # the discriminator tag
            continue
        i += 1
    return block, tuple(clean)


def _line(positions: Positions, path: tuple[str, ...]) -> int | None:
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return None


def _check_types(data: Any, path: tuple[str, ...], positions: Positions) -> list[Problem]:
    """Unknown or missing block types, found before pydantic's union error hides them."""
    problems: list[Problem] = []
    blocks = data.get("blocks") if isinstance(data, dict) else None
    if not isinstance(blocks, dict):
        return problems
    for block_id, block in blocks.items():
        where = (*path, "blocks", str(block_id))
        if not isinstance(block, dict):
            problems.append(
                Problem(
                    "a block must be a mapping",
                    str(block_id),
                    _line(positions, where),
                    code="invalid_block",
                )
            )
            continue
        kind = block.get("type")
        if kind is None:
            problems.append(
                Problem(
                    "missing `type:`", str(block_id), _line(positions, where), code="missing_type"
                )
            )
        elif kind not in BLOCK_TYPES:
            problems.append(
                Problem(
                    f"unknown block type '{kind}' (known: {', '.join(BLOCK_TYPES)})",
                    str(block_id),
                    _line(positions, (*where, "type")),
                    code="unknown_block_type",
                )
            )
        elif kind in ("loop", "parallel"):
            problems.extend(_check_types(block, where, positions))
    return problems


def definition_from_data(
    data: Any, positions: Positions | None = None, *, filename: str | None = None
) -> WorkflowDefinition:
    positions = positions or {}
    if not isinstance(data, dict):
        raise WorkflowValidationError(
            [
                Problem(
                    "a workflow file must be a mapping with `name:` and `blocks:`",
                    file=filename,
                    line=1,
                )
            ]
        )
    problems = _check_types(data, (), positions)
    if problems:
        raise WorkflowValidationError([_in_file(p, filename) for p in problems])
    try:
        return WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        found: list[Problem] = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            block, clean = _block_of(loc)
            field_path = ".".join(clean)
            msg = err["msg"].removeprefix("Value error, ")
            found.append(
                Problem(
                    f"{field_path}: {msg}" if field_path else msg,
                    block,
                    _line(positions, clean),
                    filename,
                    code="invalid_field",
                )
            )
        raise WorkflowValidationError(found) from exc


def read_definition(path: str | Path) -> tuple[WorkflowDefinition, Positions]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowParseError(
            [
                Problem(
                    f"cannot read workflow file: {exc.strerror}",
                    file=str(file),
                    code="file_not_found",
                )
            ]
        ) from exc
    data, positions = parse_document(text, filename=str(file))
    return definition_from_data(data, positions, filename=str(file)), positions
