"""The newest-marker rule, in one place: a marker replaces the stored one when it is at
least as new (equal timestamps replace: the last writer of the same instant wins; older
never do). The recorder applies it in Python with ``is_newer``; both backends' SQL is
generated from ``fold_marker`` (a ``-- newest: <marker>`` line in ``queries.sql``).
"""

from __future__ import annotations

from datetime import datetime

# The fields of each marker, as (field, PostgreSQL type); the timestamp ``at`` comes last.
# Column: ``last_<marker>_<field>``; parameter: ``<marker>_<field>``.
MARKER_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "started": (
        ("block_id", "text"),
        ("block_name", "text"),
        ("block_type", "text"),
        ("at", "timestamptz"),
    ),
    "completed": (
        ("block_id", "text"),
        ("block_name", "text"),
        ("block_type", "text"),
        ("success", "boolean"),
        ("at", "timestamptz"),
    ),
}


def is_newer(stored: datetime | None, new: datetime) -> bool:
    """The rule in Python: ``new`` replaces ``stored``."""
    return stored is None or stored <= new


def _param(backend: str, name: str, pg_type: str) -> str:
    if backend == "sqlite":
        return f":{name}"
    if backend == "postgres":
        return f"%({name})s::{pg_type}"
    raise ValueError(f"unknown backend '{backend}'")


def fold_marker(backend: str, marker: str) -> str:
    """The SQL rule: ``SET`` assignments replacing all of a marker's columns together, or
    none (every right-hand side sees the row as it was before the UPDATE)."""
    if marker not in MARKER_FIELDS:
        raise ValueError(f"unknown marker '{marker}'")
    new_at = _param(backend, f"{marker}_at", "timestamptz")
    stored_at = f"last_{marker}_at"
    when = f"{new_at} IS NOT NULL AND ({stored_at} IS NULL OR {stored_at} <= {new_at})"
    return "\n".join(
        f"    last_{marker}_{field} = CASE WHEN {when}\n"
        f"        THEN {_param(backend, f'{marker}_{field}', pg_type)}"
        f" ELSE last_{marker}_{field} END,"
        for field, pg_type in MARKER_FIELDS[marker]
    )
