"""The runs list's filters, read from and written to the page's URL with the same names
as ``GET /api/v1/runs`` takes, so a filtered page and its JSON are one query apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flowtrail.status import RunStatus
from flowtrail.store.records import RunQuery

STATUSES = tuple(RunStatus)
PAGE_SIZE = 50


class FilterError(ValueError):
    """A filter value that does not parse: the page says which, and shows every run."""


@dataclass(frozen=True, slots=True)
class Filters:
    statuses: tuple[RunStatus, ...] = ()
    workflow: str | None = None
    trigger: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_duration_ms: int | None = None
    min_cost: float | None = None
    has_error: bool | None = None
    cursor: str | None = None
    limit: int = PAGE_SIZE
    live: bool = True

    @property
    def active(self) -> bool:
        return any(
            v not in (None, ())
            for v in (
                self.statuses,
                self.workflow,
                self.trigger,
                self.since,
                self.until,
                self.min_duration_ms,
                self.min_cost,
                self.has_error,
            )
        )

    def params(self, *, paging: bool = True, live: bool = True) -> list[tuple[str, str]]:
        """The query string's pairs (``status`` repeats)."""
        out: list[tuple[str, str]] = [("status", s.value) for s in self.statuses]
        for name, value in (
            ("workflow", self.workflow),
            ("trigger", self.trigger),
            ("since", _iso(self.since)),
            ("until", _iso(self.until)),
            ("min_duration_ms", self.min_duration_ms),
            ("min_cost", self.min_cost),
            ("has_error", None if self.has_error is None else str(self.has_error).lower()),
        ):
            if value is not None:
                out.append((name, str(value)))
        if paging and self.cursor:
            out.append(("cursor", self.cursor))
        if live and not self.live:
            out.append(("live", "0"))
        return out

    def url(self, path: str = "/", **changes: Any) -> str:
        """This page's URL with ``changes`` applied (paging restarts unless a cursor is
        given)."""
        changed = replace(self, **{"cursor": None, **changes})
        query = urlencode(changed.params())
        return f"{path}?{query}" if query else path

    def toggle(self, status: RunStatus) -> str:
        chosen = tuple(s for s in self.statuses if s is not status)
        if status not in self.statuses:
            chosen = tuple(s for s in STATUSES if s in (*self.statuses, status))
        return self.url(statuses=chosen)

    def api_url(self) -> str:
        query = urlencode([*self.params(live=False), ("limit", str(self.limit))])
        return f"/api/v1/runs?{query}"

    def to_query(self) -> RunQuery:
        """The store's query for these filters."""
        return RunQuery(
            statuses=self.statuses,
            workflow_name=self.workflow,
            trigger=self.trigger,
            started_since=self.since,
            started_until=self.until,
            min_duration_ms=self.min_duration_ms,
            min_cost=self.min_cost,
            has_error=self.has_error,
            limit=self.limit,
            cursor=self.cursor,
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _text(raw: str | None) -> str | None:
    return raw.strip() or None if raw is not None else None


def _when(name: str, raw: str | None) -> datetime | None:
    text = _text(raw)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{name}: '{text}' is not a date and time (ISO 8601)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _number(name: str, raw: str | None, kind: type[int] | type[float]) -> Any:
    text = _text(raw)
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise FilterError(f"{name}: '{text}' is not a number") from None
    if value < 0:
        raise FilterError(f"{name}: '{text}' is negative")
    return value


def parse(single: Mapping[str, str], statuses: Sequence[str]) -> Filters:
    """Filters from a query string: ``single`` for the one-valued names, ``statuses`` the
    repeated ``status`` values. ``FilterError`` names the first bad value."""
    chosen: list[RunStatus] = []
    for raw in statuses:
        for word in raw.split(","):
            if not word.strip():
                continue
            try:
                status = RunStatus(word.strip())
            except ValueError:
                known = ", ".join(s.value for s in STATUSES)
                raise FilterError(f"status: '{word}' is not one of {known}") from None
            if status not in chosen:
                chosen.append(status)
    has_error_text = (_text(single.get("has_error")) or "").lower()
    if has_error_text not in ("", "true", "false", "1", "0", "yes", "no"):
        raise FilterError(f"has_error: '{has_error_text}' is not true or false")
    limit = _number("limit", single.get("limit"), int) or PAGE_SIZE
    return Filters(
        statuses=tuple(s for s in STATUSES if s in chosen),
        workflow=_text(single.get("workflow")),
        trigger=_text(single.get("trigger")),
        since=_when("since", single.get("since")),
        until=_when("until", single.get("until")),
        min_duration_ms=_number("min_duration_ms", single.get("min_duration_ms"), int),
        min_cost=_number("min_cost", single.get("min_cost"), float),
        has_error=None if not has_error_text else has_error_text in ("true", "1", "yes"),
        cursor=_text(single.get("cursor")),
        limit=max(1, min(limit, 200)),
        live=single.get("live") != "0",
    )
