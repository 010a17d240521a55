"""Named SQL, kept in ``sql/<backend>/queries.sql`` (the procrastinate way).

A file is a sequence of sections, each starting with ``-- name: <name>``. Inside a
section, a line ``-- include: <other>`` is replaced by the text of section ``<other>``
(used for the marker folding that ``write_progress`` and ``finalize`` share), and a line
``-- newest: <marker>`` by that marker's newest-marker assignments for the backend (see
``flowtrail.store.newest``: the rule is written once for both backends). Every other
comment line is dropped, so a comment can never smuggle a placeholder into a query.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from flowtrail.store.newest import fold_marker

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$")
_INCLUDE = re.compile(r"^--\s*include:\s*(\w+)\s*$")
_NEWEST = re.compile(r"^--\s*newest:\s*(\w+)\s*$")


def parse_queries(text: str, backend: str = "sqlite") -> dict[str, str]:
    raw: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        match = _NAME.match(stripped)
        if match:
            if match.group(1) in raw:
                raise ValueError(f"query '{match.group(1)}' is defined twice")
            current = raw[match.group(1)] = []
        elif current is not None and not (
            stripped.startswith("--")
            and not _INCLUDE.match(stripped)
            and not _NEWEST.match(stripped)
        ):
            current.append(line)

    def expand(name: str, seen: tuple[str, ...]) -> str:
        if name in seen:
            raise ValueError(f"query '{name}' includes itself")
        if name not in raw:
            raise ValueError(f"query '{seen[-1]}' includes unknown section '{name}'")
        out: list[str] = []
        for line in raw[name]:
            match = _INCLUDE.match(line.strip())
            newest = _NEWEST.match(line.strip())
            if match:
                out.append(expand(match.group(1), (*seen, name)))
            elif newest:
                out.append(fold_marker(backend, newest.group(1)))
            else:
                out.append(line)
        return "\n".join(out).strip()

    return {name: expand(name, ()) for name in raw}


@cache
def load_queries(backend: str) -> dict[str, str]:
    """The queries of ``backend`` (``"sqlite"`` or ``"postgres"``), read once."""
    path = resources.files("flowtrail.store").joinpath("sql", backend, "queries.sql")
    return parse_queries(path.read_text(encoding="utf-8"), backend)
