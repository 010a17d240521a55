"""The run list's page cursor: opaque to callers, the keyset position inside.

A cursor is the (``started_at``, ``id``) of the last row of a page, as URL-safe base64 of
a small JSON array (no padding), so it can travel in a query string untouched. The next
page starts strictly after it in (``started_at`` DESC, ``id`` DESC) order.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from flowtrail.errors import BadCursorError

_VERSION = 1


def encode_cursor(started_at: datetime, run_id: str) -> str:
    raw = json.dumps([_VERSION, started_at.isoformat(), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position in ``cursor``; ``BadCursorError`` for anything a page did not give."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
        version, started, run_id = value
        if version != _VERSION or not isinstance(started, str) or not isinstance(run_id, str):
            raise ValueError(value)
        when = datetime.fromisoformat(started)
        if when.tzinfo is None or not run_id:
            raise ValueError(value)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        shown = cursor if len(cursor) <= 40 else cursor[:40] + "…"
        raise BadCursorError(
            f"bad cursor {shown!r}: not a cursor a previous page gave out "
            "(pass next_cursor back unchanged, or leave it out for the first page)"
        ) from None
    return when, run_id
