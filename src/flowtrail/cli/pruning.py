"""``flowtrail prune``: drop the traces, steps and outputs of old ended runs."""

from __future__ import annotations

from typing import Annotated

import typer

from flowtrail.cli.common import (
    DbOption,
    JsonOption,
    err,
    guard,
    open_db,
    out,
    parse_status,
    settings_for,
)
from flowtrail.cli.output import print_json
from flowtrail.retention import DEFAULT_BATCH, MAX_BATCH, PRUNABLE, PruneReport, parse_age, prune


def prune_runs(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Prune runs that started and ended more than this long ago: a whole "
            "number and a unit, s, m, h, d or w (30d, 12h, 2w).",
        ),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only runs with this status (repeatable; default every ended status: "
            + ", ".join(s.value for s in PRUNABLE)
            + ").",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; say what would be pruned.")
    ] = False,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum",
            help="Then give the freed space back: SQLite rewrites the file (VACUUM, which "
            "holds the write lock while it runs); PostgreSQL runs a plain VACUUM.",
        ),
    ] = False,
    batch: Annotated[
        int,
        typer.Option(min=1, max=MAX_BATCH, metavar="N", help="Runs per transaction (default 500)."),
    ] = DEFAULT_BATCH,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drop the trace, steps, output and pause snapshot of old ended runs; keep their
    summary rows (status, path, who finalized, markers, error, cost, tokens, durations,
    notes, input) and mark them pruned. Queued, running and paused runs are never
    touched. Works in short batches, so runs going on meanwhile are not held up."""

    async def go() -> int:
        age = parse_age(older_than)
        statuses = tuple(parse_status(s) for s in status or ())
        settings = settings_for(db)
        store = await open_db(settings, db=db)
        try:
            report = await prune(
                store,
                older_than=age,
                statuses=statuses or None,
                dry_run=dry_run,
                batch=batch,
                vacuum=vacuum,
            )
        finally:
            await store.close()
        if as_json:
            print_json(out, report.to_dict())
        err.print(describe(report), highlight=False)
        return 0

    raise typer.Exit(guard(go, as_json))


def describe(report: PruneReport) -> str:
    """One honest sentence: what went (or would go), and what was kept."""
    which = ", ".join(s.value for s in report.statuses)
    what = (
        f"{report.runs:,} {_plural(report.runs, 'run')} ({which}) started before "
        f"{report.cutoff.isoformat(timespec='seconds')}: {report.steps:,} "
        f"{_plural(report.steps, 'step')}, {human_bytes(report.bytes)} of traces and outputs"
    )
    if report.dry_run:
        return f"would prune {what}; nothing was changed (--dry-run)"
    text = f"pruned {what}; their summary rows are kept"
    if report.size_before is not None and report.size_after is not None:
        text += (
            f"; database {human_bytes(report.size_before)} -> "
            f"{human_bytes(report.size_after)} after VACUUM"
        )
    return text


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover
