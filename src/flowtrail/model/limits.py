"""The documented limits of workflow files and run inputs, and the checks that keep any
value flowtrail accepts storable on both backends (see "Limits" in the workflow format).

Everything here is pure: it reads text or values and reports what is wrong, so a bad file
or input is refused up front (exit 2) instead of failing deep in the parser, the engine or
the database.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any

MAX_NESTING = 100
"""Deepest nesting of mappings/lists in a workflow file or a run input. The records that
wrap a value (snapshot, spans, pause state) must still serialize; pydantic stops at 255."""
MAX_CONTAINER_DEPTH = 32
"""Loops and parallels nested inside each other (each level nests its results again)."""
MAX_WORKFLOW_DEPTH = 25
"""Child workflows calling child workflows: validation loads this deep, a run refuses to
go deeper (a workflow may call itself, so only a run can tell how deep it really goes)."""
MAX_YAML_VALUES = 100_000
"""Values a YAML document may hold once its aliases are expanded (stops "billion laughs")."""
MAX_KEY_LENGTH = 128
"""Block ids, input names and every other mapping key in a workflow file."""
MAX_NAME_LENGTH = 200
"""The ``name:`` of a workflow or a block."""
SHOWN_CHARS = 60
"""How much of a user's value a message quotes before cutting it with an ellipsis."""

TOO_MANY_DIGITS = (
    f"a number has more than {sys.get_int_max_str_digits():,} digits (Python's limit "
    "for reading integers); write it as a string"
)
# Past Python's int-string limit (about 3.32 bits a digit) no JSON encoder can write it.
_MAX_INT_BITS = int((sys.get_int_max_str_digits() or 10**9) * 3.32)
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_JSON_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear, fast
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


class LimitError(ValueError):
    """A value or text outside the documented limits; the message says which limit, the
    code is the problem code (``too_deep``, ``too_large``, ``invalid_value``, ``not_utf8``)."""

    def __init__(self, message: str, code: str = "too_large") -> None:
        super().__init__(message)
        self.code = code


def clip(text: object, limit: int = SHOWN_CHARS) -> str:
    """``text`` for a message: at most ``limit`` characters, cut with an ellipsis."""
    shown = str(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def decode_text(data: bytes) -> str:
    """UTF-8 text (a UTF-8 BOM is dropped); UTF-16/32 are accepted with their BOM only,
    because without one their encoding cannot be told from binary data."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise LimitError(
                    f"not valid {codec.upper()} text: {exc.reason}", "not_utf8"
                ) from None
    if b"\x00" in data:
        raise LimitError(
            "contains NUL bytes: UTF-16 or UTF-32 without a byte-order mark? "
            "(save the file as UTF-8)",
            "not_utf8",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LimitError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} cannot be decoded "
            "(save the file as UTF-8)",
            "not_utf8",
        ) from None
    return text


def json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, without parsing it (the parser recurses)."""
    depth = deepest = 0
    for match in _JSON_BRACKETS.finditer(_JSON_STRINGS.sub("", text)):
        if match[0] in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise LimitError(f"{name} is not allowed: numbers must be finite", "invalid_value")


def parse_json(text: str) -> Any:
    """``json.loads`` within the limits: nesting, number size, no NaN/Infinity. Raises
    :class:`json.JSONDecodeError` for malformed text, :class:`LimitError` otherwise."""
    deepest = json_depth(text)
    if deepest > MAX_NESTING:
        raise LimitError(
            f"nested {deepest} levels deep; at most {MAX_NESTING} are allowed", "too_deep"
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        raise
    except LimitError:
        raise
    except ValueError:  # an integer beyond Python's int-string limit
        raise LimitError(TOO_MANY_DIGITS) from None


def value_problems(value: Any, *, keys: bool = False) -> Iterator[tuple[tuple[str, ...], str]]:
    """Where and why ``value`` could not be accepted and stored: nesting past
    :data:`MAX_NESTING`, a non-finite number, a NUL or a lone surrogate in a string (no
    backend stores them), and with ``keys`` a mapping key longer than :data:`MAX_KEY_LENGTH`.
    Iterative, so any depth is safe to check."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_NESTING:
            yield path[:MAX_NESTING], f"nested more than {MAX_NESTING} levels deep"
            continue
        if isinstance(item, float) and not math.isfinite(item):
            yield path, f"numbers must be finite (got {item})"
        elif isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
            yield path, TOO_MANY_DIGITS  # from Python: it could not even be written out
        elif isinstance(item, str):
            if found := _BAD_CHARS.search(item):
                yield path, f"text holds {_describe(found[0])} at character {found.start()}"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = str(key)
                if found := _BAD_CHARS.search(name):
                    yield path, f"key {clip(name)!r} holds {_describe(found[0])}"
                    continue
                if keys and len(name) > MAX_KEY_LENGTH:
                    yield (
                        path,
                        f"key {clip(name)!r} is {len(name):,} characters long "
                        f"(at most {MAX_KEY_LENGTH})",
                    )
                    continue
                stack.append((child, (*path, name)))
        elif isinstance(item, list | tuple):
            stack.extend((child, (*path, str(i))) for i, child in enumerate(item))


def _describe(char: str) -> str:
    if char == "\x00":
        return "a NUL character (\\u0000 cannot be stored)"
    return f"a lone surrogate (\\u{ord(char):04x} is not valid Unicode)"


def check_value(value: Any, what: str) -> None:
    """Raise :class:`LimitError` naming the first problem of ``value`` (a run input)."""
    for path, reason in value_problems(value):
        where = f"{what}.{'.'.join(clip(p, 40) for p in path)}" if path else what
        raise LimitError(f"{where}: {reason}", "invalid_value")
