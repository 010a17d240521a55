"""Values made fit to store: JSON-safe stand-ins for what the strict encoder refuses, and
outputs capped in size with truncation metadata. Shared by the terminal write (the run's
output) and the step records (each block's output)."""

from __future__ import annotations

import json
from typing import Any

from flowtrail.diagnostics.masking import map_strings

# A truncated output keeps this fraction of the cap as a preview of its JSON text: one
# character escapes to at most 6 bytes, so the preview document stays under the cap.
_PREVIEW_DIVISOR = 8


def json_safe(value: Any) -> Any:
    """A JSON-storable stand-in for a value the strict encoder refused: unknown objects
    become their ``repr``, NUL characters (which PostgreSQL cannot store) are dropped, and
    something that cannot be walked at all (a cycle) becomes one ``repr``."""
    try:
        plain = json.loads(json.dumps(value, default=repr, allow_nan=False))
    except (ValueError, TypeError, RecursionError):
        return {"unserializable": repr(value)[:2000].replace("\x00", "")}
    return _without_nul(plain)


def cap_output(value: Any, max_bytes: int) -> tuple[Any, dict[str, Any] | None]:
    """``value`` when its JSON text fits ``max_bytes`` (UTF-8), else a stand-in document
    with truncation metadata and a preview of the text, plus that metadata."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return value, None  # not JSON at all: the store refuses it, the fallback repairs it
    if len(text) <= max_bytes // 4:  # at most 4 bytes per character: surely fits
        return value, None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return value, None
    meta = {"truncated": True, "original_bytes": size, "max_output_bytes": max_bytes}
    return {**meta, "preview": text[: max_bytes // _PREVIEW_DIVISOR]}, meta


def _without_nul(value: Any) -> Any:
    return map_strings(value, lambda text: text.replace("\x00", ""))


def fit(value: Any, max_bytes: int) -> tuple[Any, dict[str, Any] | None]:
    """``value`` made storable and capped: a JSON-safe stand-in when the strict encoder
    would refuse it (``json_safe``), then ``cap_output``'s stand-in when its JSON text is
    over ``max_bytes``. One encoding in the common case (a small, plain value)."""
    fitted, truncation, _ = fit_encoded(value, max_bytes)
    return fitted, truncation


def fit_encoded(value: Any, max_bytes: int) -> tuple[Any, dict[str, Any] | None, str | None]:
    """:func:`fit`, and in the common case the compact JSON text it was judged by (the
    store's own encoding, so the step write need not encode it again); else ``None``."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return (*cap_output(json_safe(value), max_bytes), None)
    if "\\u0000" in text:  # PostgreSQL cannot store NUL; drop it on both backends
        return (*cap_output(json_safe(value), max_bytes), None)
    if len(text) <= max_bytes // 4:
        return value, None, text
    return (*cap_output(value, max_bytes), None)
