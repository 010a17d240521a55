"""One explicit settings object, read from ``FLOWTRAIL_*`` variables and CLI flags."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowtrail.diagnostics.compaction import DEFAULT_BUDGET
from flowtrail.diagnostics.finalize import (
    DEFAULT_FINALIZE_RETRY_SECONDS,
    DEFAULT_MAX_OUTPUT_BYTES,
    MAX_OUTPUT_BYTES,
    MIN_OUTPUT_BYTES,
)
from flowtrail.diagnostics.steps import DEFAULT_MAX_STEP_OUTPUT_BYTES
from flowtrail.engine.blocks import Prices
from flowtrail.errors import SettingsError
from flowtrail.model.budget import DEFAULT_MAX_CHARS, DEFAULT_TIMEOUT_SECONDS

DEFAULT_DATABASE_PATH = Path(".flowtrail") / "flowtrail.db"
SECRET_PREFIX = "FLOWTRAIL_SECRET_"


_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


def parse_switch(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _ON or word in _OFF:
        return word in _ON
    raise SettingsError(f"{name}={text!r} is not a switch: use 1/true/yes/on or 0/false/no/off")


def default_database_url(cwd: Path | None = None) -> str:
    """The SQLite database in the nearest ``.flowtrail`` folder, looking in ``cwd`` and then
    each folder above it (as git finds ``.git``), so every command run anywhere inside a
    project sees the same runs. With none found: ``.flowtrail/flowtrail.db`` under ``cwd``
    (created there by the first run)."""
    here = (cwd or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_DATABASE_PATH.parent).is_dir():
            return f"sqlite:///{(folder / DEFAULT_DATABASE_PATH).as_posix()}"
    return f"sqlite:///{DEFAULT_DATABASE_PATH.as_posix()}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    """``FLOWTRAIL_DATABASE_URL`` or ``--db``: ``sqlite:///PATH`` or ``postgresql://...``;
    by default the nearest ``.flowtrail/`` folder upwards holds the SQLite file."""
    max_concurrency: int = 64
    """``FLOWTRAIL_MAX_CONCURRENCY``: blocks running at once in one run, children included."""
    inline_sync_seconds: float = 0.002
    """``FLOWTRAIL_INLINE_SYNC_SECONDS``: a sync function block whose calls have all taken
    less than this runs on the event loop's own thread, skipping the hop to a worker
    thread and back; its first calls (and every call of a block with a ``timeout:``) run
    in a worker thread. 0 sends every call to a worker thread."""
    run_timeout: float | None = None
    """``FLOWTRAIL_RUN_TIMEOUT`` or ``--timeout``: the run deadline in seconds (None: none)."""
    cancel_poll_seconds: float = 0.5
    """``FLOWTRAIL_CANCEL_POLL_SECONDS``: how often a running engine reads the cancel flag."""
    trace_budget_bytes: int = DEFAULT_BUDGET
    """``FLOWTRAIL_TRACE_BUDGET_BYTES``: the stored trace's size before it is compacted."""
    max_spans_in_memory: int = 50_000
    """Spans kept in memory; past it further spans are counted, not kept (memory stays
    bounded in a long loop; the stored trace says how many were elided)."""
    observer_grace_seconds: float = 2.0
    """How long closing a run waits for observers still handling events."""
    finalize_retry_seconds: float = DEFAULT_FINALIZE_RETRY_SECONDS
    """How long the terminal write keeps retrying while the database is unavailable
    (outage, disk full, read-only file) before the run is reported as not final."""
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    """Largest run output stored as is (its JSON text in UTF-8 bytes); a larger one is
    stored as a truncated preview with truncation metadata, so every record fits every
    backend's limits (PostgreSQL's jsonb stops at 256 MB)."""
    max_step_output_bytes: int = DEFAULT_MAX_STEP_OUTPUT_BYTES
    """``FLOWTRAIL_MAX_STEP_OUTPUT_BYTES``: largest block output kept on its step record
    (JSON text, UTF-8 bytes; default 1 MiB). A larger one is kept as a truncated preview,
    and a retry runs that block again instead of reusing it."""
    expression_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    """How long the templates of one block (or one loop condition) may take to evaluate."""
    expression_max_chars: int = DEFAULT_MAX_CHARS
    """The largest text, list or formatted value one template operation may build."""
    prices: Prices = field(default_factory=Prices)
    """``FLOWTRAIL_PRICES``: per-model token prices, for agent blocks' cost."""
    agent_base_url: str | None = None
    """``FLOWTRAIL_AGENT_BASE_URL`` (or ``OPENAI_BASE_URL``): the chat-completions server."""
    agent_api_key: str | None = None
    """``FLOWTRAIL_AGENT_API_KEY`` (or ``OPENAI_API_KEY``); masked like a secret."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """``FLOWTRAIL_SECRET_<NAME>`` variables, read as ``secrets.NAME``; masked everywhere."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The process environment; a workflow reads only the variables its ``env:`` lists."""
    lease_seconds: float = 60.0
    """``FLOWTRAIL_LEASE_SECONDS``: how long a running run's lease lasts without a
    heartbeat (renewed every third of it, by a thread). A run whose lease expired is
    ended ``crashed`` by the sweeper."""
    sweep_seconds: float = 15.0
    """``FLOWTRAIL_SWEEP_SECONDS``: how often the sweeper looks for expired leases,
    stuck cancels, expired queued runs and queue jobs out of step with their runs."""
    cancel_grace_seconds: float | None = None
    """``FLOWTRAIL_CANCEL_GRACE_SECONDS``: how long a running run may take to honour a
    cancel request before the sweeper ends it ``cancelled`` by force (None: one lease,
    the time a live engine surely needs to see the flag: its heartbeat reads it every
    third of a lease)."""
    env_allow: tuple[str, ...] | None = None
    """``FLOWTRAIL_ENV_ALLOW``: patterns (``fnmatch``, comma-separated) of the variables any
    workflow may read; a declared variable outside them is not readable. None: no limit."""
    queue_ttl_seconds: float = 24 * 3600.0
    """``FLOWTRAIL_QUEUE_TTL_SECONDS``: how long a queued run waits for a worker before it
    ends ``failed`` with path ``expired`` (``run --queue --expires-in`` overrides it)."""
    otel: bool | None = None
    """``FLOWTRAIL_OTEL``: export run traces over OTLP (``1``/``true``: on, ``0``/``false``:
    off; needs the ``flowtrail[otel]`` extra). None: on when ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (or ``..._TRACES_ENDPOINT``) is set. See ``flowtrail.otel``."""

    def __post_init__(self) -> None:
        if not self.inline_sync_seconds >= 0:
            raise SettingsError(
                f"inline_sync_seconds must be 0 or more, got {self.inline_sync_seconds}"
            )
        if self.max_concurrency < 1:
            raise SettingsError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.run_timeout is not None and self.run_timeout <= 0:
            raise SettingsError(f"run_timeout must be positive, got {self.run_timeout}")
        if self.cancel_poll_seconds <= 0:
            raise SettingsError("cancel_poll_seconds must be positive")
        if not self.lease_seconds > 0:
            raise SettingsError(f"lease_seconds must be positive, got {self.lease_seconds}")
        if not self.sweep_seconds > 0:
            raise SettingsError(f"sweep_seconds must be positive, got {self.sweep_seconds}")
        if not self.queue_ttl_seconds > 0:  # also refuses NaN
            raise SettingsError(f"queue_ttl_seconds must be positive, got {self.queue_ttl_seconds}")
        if self.cancel_grace_seconds is not None and not self.cancel_grace_seconds >= 0:
            raise SettingsError(
                f"cancel_grace_seconds must be zero or more, got {self.cancel_grace_seconds}"
            )
        if self.trace_budget_bytes < 1024:
            raise SettingsError("trace_budget_bytes must be at least 1024")
        if not self.finalize_retry_seconds >= 0:  # also refuses NaN
            raise SettingsError(
                f"finalize_retry_seconds must be zero or more, got {self.finalize_retry_seconds}"
            )
        if not self.expression_timeout_seconds > 0:  # also refuses NaN
            raise SettingsError(
                "expression_timeout_seconds must be positive, "
                f"got {self.expression_timeout_seconds}"
            )
        if self.expression_max_chars < 1000:
            raise SettingsError(
                f"expression_max_chars must be at least 1000, got {self.expression_max_chars}"
            )
        if not MIN_OUTPUT_BYTES <= self.max_step_output_bytes <= MAX_OUTPUT_BYTES:
            raise SettingsError(
                f"max_step_output_bytes must be between {MIN_OUTPUT_BYTES} and "
                f"{MAX_OUTPUT_BYTES}, got {self.max_step_output_bytes}"
            )
        if not MIN_OUTPUT_BYTES <= self.max_output_bytes <= MAX_OUTPUT_BYTES:
            raise SettingsError(
                f"max_output_bytes must be between {MIN_OUTPUT_BYTES} and {MAX_OUTPUT_BYTES}, "
                f"got {self.max_output_bytes}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {"env": env}
        if env.get("FLOWTRAIL_DATABASE_URL"):
            values["database_url"] = env["FLOWTRAIL_DATABASE_URL"]
        for key, name, conv in (
            ("FLOWTRAIL_MAX_CONCURRENCY", "max_concurrency", int),
            ("FLOWTRAIL_INLINE_SYNC_SECONDS", "inline_sync_seconds", float),
            ("FLOWTRAIL_RUN_TIMEOUT", "run_timeout", float),
            ("FLOWTRAIL_CANCEL_POLL_SECONDS", "cancel_poll_seconds", float),
            ("FLOWTRAIL_LEASE_SECONDS", "lease_seconds", float),
            ("FLOWTRAIL_SWEEP_SECONDS", "sweep_seconds", float),
            ("FLOWTRAIL_CANCEL_GRACE_SECONDS", "cancel_grace_seconds", float),
            ("FLOWTRAIL_TRACE_BUDGET_BYTES", "trace_budget_bytes", int),
            ("FLOWTRAIL_FINALIZE_RETRY_SECONDS", "finalize_retry_seconds", float),
            ("FLOWTRAIL_MAX_OUTPUT_BYTES", "max_output_bytes", int),
            ("FLOWTRAIL_MAX_STEP_OUTPUT_BYTES", "max_step_output_bytes", int),
            ("FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS", "expression_timeout_seconds", float),
            ("FLOWTRAIL_EXPRESSION_MAX_CHARS", "expression_max_chars", int),
            ("FLOWTRAIL_QUEUE_TTL_SECONDS", "queue_ttl_seconds", float),
        ):
            if env.get(key):
                try:
                    values[name] = conv(env[key])
                except ValueError:
                    raise SettingsError(f"{key}={env[key]!r} is not a valid number") from None
        values["agent_base_url"] = env.get("FLOWTRAIL_AGENT_BASE_URL") or env.get("OPENAI_BASE_URL")
        values["agent_api_key"] = env.get("FLOWTRAIL_AGENT_API_KEY") or env.get("OPENAI_API_KEY")
        values["secrets"] = {
            k.removeprefix(SECRET_PREFIX): v for k, v in env.items() if k.startswith(SECRET_PREFIX)
        }
        if env.get("FLOWTRAIL_ENV_ALLOW") is not None:
            values["env_allow"] = tuple(
                p.strip() for p in env["FLOWTRAIL_ENV_ALLOW"].split(",") if p.strip()
            )
        if env.get("FLOWTRAIL_OTEL", "").strip():
            values["otel"] = parse_switch("FLOWTRAIL_OTEL", env["FLOWTRAIL_OTEL"])
        if env.get("FLOWTRAIL_PRICES"):
            values["prices"] = parse_prices(env["FLOWTRAIL_PRICES"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def cancel_grace(self) -> float:
        """Seconds a cancel request may stay unanswered before the sweeper forces it."""
        grace = self.cancel_grace_seconds
        return self.lease_seconds if grace is None else grace

    @property
    def named_secrets(self) -> dict[str, str]:
        """Every secret value by a stable name (what a pause snapshot refers to)."""
        found = dict(self.secrets)
        if self.agent_api_key:
            found["FLOWTRAIL_AGENT_API_KEY"] = self.agent_api_key
        return found

    @property
    def masked_secrets(self) -> list[str]:
        found = list(self.secrets.values())
        if self.agent_api_key:
            found.append(self.agent_api_key)
        return found


def parse_prices(text: str) -> Prices:
    """``{"model": {"prompt": usd_per_1k, "completion": usd_per_1k}}``, inline or ``@file``."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
        table = {
            str(model): (float(p.get("prompt", 0)), float(p.get("completion", 0)))
            for model, p in raw.items()
        }
    except (ValueError, AttributeError, TypeError) as exc:
        raise SettingsError(f"FLOWTRAIL_PRICES is not a valid price table: {exc}") from exc
    return Prices(table)
