"""YAML text to Python values, within the limits of :mod:`flowtrail.model.limits`.

Two readers share libyaml's C parser (PyYAML's own Python one where PyYAML was built
without libyaml):

* :func:`plain_document` builds values straight from the parser's events. It handles the
  documents people write (mappings, sequences and scalars, anchors without aliases) and
  gives up, raising :class:`NotPlain`, on anything else: an alias, a merge key, a tagged
  collection, a complex or duplicate key, nesting past the limit, any error.
* :func:`full_document` is PyYAML's composer and safe constructor, bounded: the composer
  recurses once per nesting level, and aliases can make a few hundred bytes expand to
  billions of values. It also gives every value's file line (:func:`lines_of`) and reports
  duplicate keys. It reads what the plain reader gave up on, with PyYAML's messages.

Most files take the plain road, which is about three times faster; lines are only needed
when something is wrong, so :class:`LazyLines` works them out on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from flowtrail.errors import Problem
from flowtrail.model.limits import MAX_NESTING, MAX_YAML_VALUES, clip

Positions = Mapping[tuple[str, ...], int]

if yaml.__with_libyaml__:  # libyaml scans and parses in C: about 25x the pure-Python speed
    from yaml._yaml import CParser as _Parser
else:  # pragma: no cover - PyYAML built without libyaml

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_RESOLVER = Resolver()
_CONSTRUCTORS = SafeConstructor.yaml_constructors
_CONSTRUCTOR = SafeConstructor()  # its scalar constructors keep no state
_CACHE_MAX = 10_000


class NotPlain(Exception):
    """The document needs :func:`full_document` (or is malformed: that one will say how)."""


class LimitMark:
    """Carries a limit's message, place and code through PyYAML's error type."""

    def __init__(self, message: str, mark: Any, code: str) -> None:
        self.message = message
        self.mark = mark
        self.code = code


# -- the plain road ----------------------------------------------------------------------

_tags: dict[str, str] = {}  # a plain scalar's resolved tag depends on its text only
_scalars: dict[tuple[str, str], Any] = {}  # ints, floats, booleans, nulls: immutable


def _tag_of(value: str) -> str:
    tag = _tags.get(value)
    if tag is None:
        tag = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        if len(_tags) >= _CACHE_MAX:
            _tags.clear()
        _tags[value] = tag
    return tag


def _scalar(event: ScalarEvent) -> tuple[Any, str]:
    tag = event.tag
    if tag is None or tag == "!":
        tag = _tag_of(event.value) if event.implicit[0] else _STR
    if tag == _STR:
        return event.value, tag
    key = (tag, event.value)
    try:
        return _scalars[key], tag
    except KeyError:
        pass
    make = _CONSTRUCTORS.get(tag)
    if make is None or tag == _MERGE:
        raise NotPlain
    node = ScalarNode(tag, event.value, None, None, event.style)
    value = make(_CONSTRUCTOR, node)
    if isinstance(value, int | float | bool) or value is None:
        if len(_scalars) >= _CACHE_MAX:
            _scalars.clear()
        _scalars[key] = value
    return value, tag


_NO_KEY: Any = object()


def plain_document(text: str) -> Any:
    """The document's value, built from the parser's events, or :class:`NotPlain`."""
    parser = _Parser(text)
    try:
        return _build(parser)
    except NotPlain:
        raise
    except Exception as exc:  # malformed, or a value the constructor refuses
        raise NotPlain from exc
    finally:
        parser.dispose()


def _build(parser: Any) -> Any:
    get = parser.get_event
    get()  # stream start
    if parser.check_event(yaml.StreamEndEvent):
        return None
    get()  # document start
    stack: list[Any] = []  # the open mappings and sequences
    keys: list[Any] = []  # each open mapping's key waiting for its value
    while True:
        event = get()
        kind = event.__class__
        if kind is ScalarEvent:
            value, tag = _scalar(event)
            if stack and keys[-1] is _NO_KEY and stack[-1].__class__ is dict:
                if tag == _MERGE or value in stack[-1]:
                    raise NotPlain  # a merge key, or a duplicate key (reported with its line)
                keys[-1] = value
                continue
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.tag not in (None, "!", _MAP if kind is MappingStartEvent else _SEQ):
                raise NotPlain
            if len(stack) >= MAX_NESTING:
                raise NotPlain
            if stack and keys[-1] is _NO_KEY and stack[-1].__class__ is dict:
                raise NotPlain  # a mapping or a sequence as a key
            stack.append({} if kind is MappingStartEvent else [])
            keys.append(_NO_KEY)
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value = stack.pop()
            keys.pop()
        else:  # an alias (or an event a well-formed document has no place for)
            raise NotPlain
        if not stack:
            get()  # document end
            if not parser.check_event(yaml.StreamEndEvent):
                raise NotPlain  # a second document: the full reader says so
            return value
        top = stack[-1]
        if top.__class__ is list:
            top.append(value)
        else:
            top[keys[-1]] = value
            keys[-1] = _NO_KEY


# -- the full road -----------------------------------------------------------------------


class _Loader(_Parser, Composer, SafeConstructor, Resolver):
    """PyYAML's composer and safe constructor over the parser above, bounded."""

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        Composer.__init__(self)
        self.depth = 0
        self.nodes = 0
        self.open_anchors: set[str] = set()  # anchored nodes still being composed
        self.aliased = False

    def _limit(self, message: str, mark: Any, code: str) -> NoReturn:
        raise yaml.YAMLError(LimitMark(message, mark, code))

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = Composer.get_single_node(self)
        if node is not None and self.aliased:
            self._check_expansion(node)
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()
        anchor = event.anchor
        if event.__class__ is AliasEvent:
            if anchor in self.open_anchors:
                self._limit(
                    f"alias *{clip(anchor)} refers to a value holding it",
                    event.start_mark,
                    "too_deep",
                )
            self.aliased = True
            return Composer.compose_node(self, parent, index)
        self.depth += 1
        self.nodes += 1
        if self.depth > MAX_NESTING:
            self._limit(f"nested more than {MAX_NESTING} levels deep", event.start_mark, "too_deep")
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.discard(anchor)

    def _check_expansion(self, root: yaml.Node) -> None:
        """Aliases may add at most MAX_YAML_VALUES values to what the file writes out; the
        innermost value past that is named (nesting is bounded, so recursion is safe)."""
        limit = MAX_YAML_VALUES + self.nodes
        sizes: dict[int, int] = {}

        def size(node: yaml.Node) -> int:
            known = sizes.get(id(node))
            if known is not None:
                return known
            total = 1
            if isinstance(node, yaml.MappingNode):
                total += sum(size(k) + size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                total += sum(size(item) for item in node.value)
            if total > limit:
                self._limit(
                    f"expands to more than {MAX_YAML_VALUES:,} values through aliases; "
                    "write the values out or use fewer aliases",
                    node.start_mark,
                    "too_large",
                )
            sizes[id(node)] = total
            return total

        size(root)


def full_document(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's value and its node tree. Raises ``yaml.YAMLError`` (its first
    argument a :class:`LimitMark` for a limit) or ``ValueError`` (an integer past
    Python's int-string limit)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return (None if node is None else loader.construct_document(node)), node
    finally:
        loader.dispose()


def lines_of(node: yaml.Node) -> tuple[dict[tuple[str, ...], int], list[Problem]]:
    """Every value's file line by its path of keys, and the duplicate keys."""
    out: dict[tuple[str, ...], int] = {}
    problems: list[Problem] = []
    _walk(node, (), out, problems, set())
    return out, problems


def _walk(
    node: yaml.Node,
    path: tuple[str, ...],
    out: dict[tuple[str, ...], int],
    problems: list[Problem],
    seen_nodes: set[int],
) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen_nodes:
        return  # an alias: its keys were checked (and its lines noted) where it was written
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        in_blocks = bool(path) and path[-1] == "blocks"
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(
                        f"duplicate key '{clip(key)}'",
                        block_id=key if in_blocks else None,
                        line=key_node.start_mark.line + 1,
                        code="duplicate_id" if in_blocks else "duplicate_key",
                    )
                )
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), out, problems, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, str(i)), out, problems, seen_nodes)


class LazyLines(Mapping[tuple[str, ...], int]):
    """The lines of a document read by the plain road, worked out (by reading it again
    with the full reader) only when a problem needs one."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: dict[tuple[str, ...], int] | None = None

    def _get(self) -> dict[tuple[str, ...], int]:
        if self._lines is None:
            try:
                _, node = full_document(self._text)
                self._lines = lines_of(node)[0] if node is not None else {}
            except (yaml.YAMLError, ValueError):  # the plain road read it: cannot happen
                self._lines = {}
        return self._lines

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, path: tuple[str, ...]) -> int:
        return self._get()[path]

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
