"""Check a run's input against the workflow's ``inputs:`` before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowtrail.errors import InputError
from flowtrail.model.definition import InputSpec, WorkflowDefinition
from flowtrail.model.limits import LimitError, check_value

_CHECKS: dict[str, tuple[type | tuple[type, ...], ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _matches(spec: InputSpec, value: Any) -> bool:
    if spec.type == "any":
        return True
    if value is None and spec.required is False and spec.default is None:
        return True  # an optional input left out: null, however often it is checked
    if isinstance(value, bool) and spec.type in ("integer", "number"):
        return False
    return isinstance(value, _CHECKS[spec.type])


def validate_inputs(
    definition: WorkflowDefinition, raw: Any, mask: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """The start block's output: the input with defaults filled in. Raises InputError,
    whose message passes the input's own keys through ``mask`` (secret values used as
    keys are never echoed)."""
    hide = mask or (lambda text: text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(f"run input must be a JSON object, got {type(raw).__name__}")
    try:
        check_value(raw, "input")
    except LimitError as exc:
        raise InputError(f"invalid run input: {hide(str(exc))}") from None
    if not definition.inputs:
        return dict(raw)
    problems = []
    values: dict[str, Any] = {}
    for name, spec in definition.inputs.items():
        if name in raw:
            value = raw[name]
            if not _matches(spec, value):
                problems.append(f"'{name}' must be {spec.type}, got {type(value).__name__}")
            values[name] = value
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.required is not False:
            problems.append(f"'{name}' is required ({spec.type})")
        else:
            values[name] = None
    unknown = sorted(set(raw) - set(definition.inputs))
    if unknown:
        problems.append(
            f"unknown input(s): {', '.join(hide(str(k)) for k in unknown)} "
            f"(declared: {', '.join(definition.inputs)})"
        )
    if problems:
        raise InputError("invalid run input: " + "; ".join(problems))
    return values


def declared_inputs(definition: WorkflowDefinition) -> list[dict[str, Any]]:
    """The ``inputs:`` of a workflow as ``run`` checks them (required when no default is
    given, unless ``required: false``)."""
    return [
        {
            "name": name,
            "type": spec.type,
            "required": spec.default is None and spec.required is not False,
            "default": spec.default,
            "description": spec.description,
        }
        for name, spec in definition.inputs.items()
    ]
