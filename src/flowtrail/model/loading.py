"""Read a workflow file (YAML or JSON) into pydantic models, remembering file lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flowtrail.errors import InputError, Problem, WorkflowParseError, WorkflowValidationError
from flowtrail.model.definition import BLOCK_TYPES, WorkflowDefinition
from flowtrail.model.limits import (
    TOO_MANY_DIGITS,
    LimitError,
    clip,
    decode_text,
    parse_json,
    value_problems,
)
from flowtrail.model.messages import did_you_mean, reword
from flowtrail.model.yamlread import (
    LazyLines,
    LimitMark,
    NotPlain,
    Positions,
    full_document,
    lines_of,
    plain_document,
)


def _parse_yaml(text: str, filename: str | None) -> tuple[Any, Positions]:
    try:
        return plain_document(text), LazyLines(text)
    except NotPlain:
        pass
    try:
        data, node = full_document(text)  # the reader refuses control characters right away
    except yaml.YAMLError as exc:
        arg = exc.args[0] if exc.args else None
        if isinstance(arg, LimitMark):
            raise _parse_error(arg.message, arg.mark.line + 1, filename, arg.code) from None
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        raise _parse_error(
            f"malformed YAML: {clip(reason, 200)}",
            mark.line + 1 if mark is not None else None,
            filename,
            "malformed_workflow",
        ) from None
    except ValueError:  # an integer past Python's int-string limit
        raise _parse_error(TOO_MANY_DIGITS, None, filename, "too_large") from None
    if node is None:
        return data, {}
    positions, problems = lines_of(node)
    if problems:
        raise WorkflowValidationError([_in_file(p, filename) for p in problems])
    return data, positions


def _parse_error(message: str, line: int | None, filename: str | None, code: str) -> Exception:
    return WorkflowParseError([Problem(message, line=line, file=filename, code=code)])


def parse_document(text: str, *, filename: str | None = None) -> tuple[Any, Positions]:
    """Parse YAML (JSON is YAML too, but gets JSON's own error messages), within the
    limits of :mod:`flowtrail.model.limits`."""
    stripped = text.lstrip()
    if (filename and filename.endswith(".json")) or stripped.startswith("{"):
        try:
            return parse_json(text), {}
        except json.JSONDecodeError as exc:
            raise _parse_error(
                f"malformed JSON: {exc.msg}", exc.lineno, filename, "malformed_workflow"
            ) from None
        except LimitError as exc:
            raise _parse_error(str(exc), None, filename, exc.code) from None
    return _parse_yaml(text, filename)


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


def line_of(positions: Positions, path: tuple[str, ...]) -> int | None:
    """The file line of ``path``, or of its nearest parent that has one."""
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return None


def _check_types(
    data: Any, path: tuple[str, ...], positions: Positions, bad: list[tuple[str, ...]]
) -> list[Problem]:
    """Unknown or missing block types, found before pydantic's union error hides them;
    the paths of those blocks go to ``bad`` so the rest of the file is still checked."""
    problems: list[Problem] = []
    blocks = data.get("blocks") if isinstance(data, dict) else None
    if not isinstance(blocks, dict):
        return problems
    for block_id, block in blocks.items():
        where = (*path, "blocks", str(block_id))
        if not isinstance(block, dict):
            problems.append(
                Problem(
                    "a block must be a mapping with a `type:`",
                    str(block_id),
                    line_of(positions, where),
                    code="invalid_block",
                )
            )
            bad.append(where)
            continue
        kind = block.get("type")
        if kind is None:
            problems.append(
                Problem(
                    f"missing `type:` (one of: {', '.join(BLOCK_TYPES)})",
                    str(block_id),
                    line_of(positions, where),
                    code="missing_type",
                )
            )
            bad.append(where)
        elif kind not in BLOCK_TYPES:
            hint = did_you_mean(str(kind), BLOCK_TYPES)
            problems.append(
                Problem(
                    f"unknown block type '{clip(kind)}'{hint} (known: {', '.join(BLOCK_TYPES)})",
                    str(block_id),
                    line_of(positions, (*where, "type")),
                    code="unknown_block_type",
                )
            )
            bad.append(where)
        elif kind in ("loop", "parallel"):
            problems.extend(_check_types(block, where, positions, bad))
    return problems


def _check_values(data: dict[str, Any], positions: Positions) -> list[Problem]:
    """Values no backend could store, or past the documented limits (any depth is safe)."""
    problems: list[Problem] = []
    for path, reason in value_problems(data, keys=True):
        block, clean = _block_of(path)
        where = ".".join(clip(p, 40) for p in clean)
        problems.append(
            Problem(
                f"{where}: {reason}" if where else reason,
                clip(block) if block is not None else None,
                line_of(positions, clean),
                code="invalid_value",
            )
        )
    return problems


def _without(data: Any, paths: list[tuple[str, ...]]) -> Any:
    """``data`` without the blocks at ``paths`` (copied along the way, never changed)."""
    if not paths:
        return data
    copy = dict(data)
    for path in paths:
        node = copy
        for part in path[:-1]:
            node[part] = dict(node[part])
            node = node[part]
        node.pop(path[-1], None)
    return copy


def definition_from_data(
    data: Any, positions: Positions | None = None, *, filename: str | None = None
) -> WorkflowDefinition:
    """Validate a parsed workflow document, reporting every problem it has at once."""
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
    problems = _check_values(data, positions)
    if problems:
        raise WorkflowValidationError([_in_file(p, filename) for p in problems])
    bad: list[tuple[str, ...]] = []
    problems = _check_types(data, (), positions, bad)
    try:
        definition = WorkflowDefinition.model_validate(_without(data, bad))
    except ValidationError as exc:
        clean = lambda loc: _block_of(loc)[1]  # noqa: E731
        for loc, message in reword(exc.errors(), clean, data):
            block, _ = _block_of(loc)
            field_path = ".".join(clip(p, 40) for p in loc)
            problems.append(
                Problem(
                    f"{field_path}: {message}" if field_path else message,
                    clip(block) if block else None,
                    line_of(positions, loc),
                    code="invalid_field",
                )
            )
    if problems:
        raise WorkflowValidationError([_in_file(p, filename) for p in problems])
    return definition


def read_definition(path: str | Path) -> tuple[WorkflowDefinition, Positions]:
    file = Path(path)
    try:
        data = file.read_bytes()
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
    try:
        text = decode_text(data)
    except LimitError as exc:
        raise _parse_error(str(exc), None, str(file), exc.code) from None
    document, positions = parse_document(text, filename=str(file))
    return definition_from_data(document, positions, filename=str(file)), positions


def read_input(value: str | None) -> Any:
    """A run input given as JSON text or ``@file``, parsed within the limits. Raises
    :class:`InputError` saying what is wrong (and where, for malformed JSON)."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        name = value[1:]
        try:
            text = decode_text(Path(name).read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read input file {clip(name)}: {exc.strerror}") from exc
        except LimitError as exc:
            raise InputError(f"input file {clip(name)}: {exc}") from None
    try:
        parsed = parse_json(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except LimitError as exc:
        raise InputError(f"--input: {exc}") from None
    return parsed
