"""Versioned migrations shipped in the package, and the runner both backends share.

A migration is ``sql/<backend>/migrations/NNNN_description.sql``; its version is the file
name without ``.sql``. Each pending migration is applied in its own transaction, under a
lock that makes concurrent migrators safe (each backend decides what the lock is), and
is recorded in ``flowtrail_migrations`` in that same transaction.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    sql: str


class MigrationTarget(Protocol):
    """The I/O a backend supplies to the runner."""

    def locked_transaction(self) -> AbstractAsyncContextManager[None]:
        """Begin a transaction holding the migration lock; commit on clean exit."""
        ...

    async def applied_versions(self) -> set[str]:
        """Versions already recorded (empty when the bookkeeping table is missing).

        Also called outside the transaction, as a lock-free check that nothing is pending.
        """
        ...

    async def apply(self, migration: Migration) -> None:
        """Run the migration's SQL and record its version (inside the transaction)."""
        ...


@cache
def discover(backend: str) -> tuple[Migration, ...]:
    folder = resources.files("flowtrail.store").joinpath("sql", backend, "migrations")
    found: list[Migration] = []
    numbers: set[str] = set()
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        if match.group(1) in numbers:
            # Two files with one number would apply in an order nobody chose.
            raise ValueError(f"two {backend} migrations are numbered {match.group(1)}")
        numbers.add(match.group(1))
        found.append(Migration(entry.name[: -len(".sql")], entry.read_text(encoding="utf-8")))
    return tuple(sorted(found, key=lambda m: m.version))


async def apply_pending(target: MigrationTarget, migrations: tuple[Migration, ...]) -> list[str]:
    """Apply what is missing, in order; return the versions applied by this call.

    The applied set is re-read under the lock for every migration, so a concurrent
    migrator that got there first is simply skipped.
    """
    applied_now: list[str] = []
    for migration in migrations:
        async with target.locked_transaction():
            if migration.version in await target.applied_versions():
                continue
            await target.apply(migration)
        applied_now.append(migration.version)
    return applied_now
