"""``flowtrail validate``, ``schema`` and ``db upgrade``: the workflow file and the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from flowtrail.cli.common import EXIT_INVALID, DbOption, JsonOption, err, guard, out, settings_for
from flowtrail.cli.output import inputs_table, print_json
from flowtrail.errors import WorkflowError
from flowtrail.model.compile import compile_file
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.model.inputs import declared_inputs
from flowtrail.queue.schema import apply_queue_schema
from flowtrail.store import open_store


def validate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Workflow file (YAML or JSON).")],
    as_json: JsonOption = False,
    inputs: Annotated[
        bool,
        typer.Option(
            "--inputs", help="Also list the inputs the workflow declares (what --input takes)."
        ),
    ] = False,
) -> None:
    """Check a workflow file without running it; --inputs lists what it takes."""
    try:
        workflow = compile_file(file)
    except WorkflowError as exc:
        if as_json:
            print_json(
                out,
                {
                    "valid": False,
                    "problems": [
                        {
                            "code": p.code,
                            "message": p.message,
                            "block_id": p.block_id,
                            "line": p.line,
                            "file": p.file,
                        }
                        for p in exc.problems
                    ],
                },
            )
        for problem in exc.problems:
            err.print(f"[red]✗[/] {escape(str(problem))}", markup=True)
        raise typer.Exit(EXIT_INVALID) from None
    declared = declared_inputs(workflow.definition) if inputs else None
    if as_json:
        data: dict[str, Any] = {
            "valid": True,
            "workflow": workflow.name,
            "definition_hash": workflow.definition_hash,
        }
        if declared is not None:
            data["inputs"] = declared
        print_json(out, data)
        return
    err.print(
        f"[green]✓[/] {escape(str(file))}: workflow '{escape(workflow.name)}' is valid",
        markup=True,
    )
    if declared is not None:
        if declared:
            out.print(inputs_table(declared))
        else:
            err.print("it declares no inputs (any JSON object is accepted as --input)")


def schema() -> None:
    """Print the JSON Schema of the workflow format."""
    print_json(out, WorkflowDefinition.model_json_schema(by_alias=True))


def db_upgrade(db: DbOption = None) -> None:
    """Apply pending migrations (on PostgreSQL, also the job queue's tables)."""

    async def go() -> int:
        store = open_store(settings_for(db).database_url)
        await store.open()
        try:
            applied = await store.migrate()
            version = await store.schema_version()
        finally:
            await store.close()
        err.print(f"applied {len(applied)} migration(s); schema version {version}")
        if store.backend == "postgres":
            fresh = await apply_queue_schema(store.url)
            err.print(
                "applied the Procrastinate queue schema"
                if fresh
                else "the Procrastinate queue schema is in place"
            )
        return 0

    raise typer.Exit(guard(go))
