"""``flowtrail validate``, ``schema`` and ``db upgrade``: the workflow file and the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowtrail.cli.common import EXIT_INVALID, DbOption, JsonOption, err, guard, out, settings_for
from flowtrail.cli.output import dump
from flowtrail.errors import WorkflowError
from flowtrail.model.compile import compile_file
from flowtrail.model.definition import WorkflowDefinition
from flowtrail.store import open_store


def validate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Workflow file (YAML or JSON).")],
    as_json: JsonOption = False,
) -> None:
    """Check a workflow file without running it."""
    try:
        workflow = compile_file(file)
    except WorkflowError as exc:
        if as_json:
            out.print(
                dump(
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
                    }
                )
            )
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", markup=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        out.print(
            dump(
                {
                    "valid": True,
                    "workflow": workflow.name,
                    "definition_hash": workflow.definition_hash,
                }
            )
        )
    else:
        err.print(f"[green]✓[/] {file}: workflow '{workflow.name}' is valid", markup=True)


def schema() -> None:
    """Print the JSON Schema of the workflow format."""
    out.print(dump(WorkflowDefinition.model_json_schema(by_alias=True)))


def db_upgrade(db: DbOption = None) -> None:
    """Apply pending migrations."""

    async def go() -> int:
        store = open_store(settings_for(db).database_url)
        await store.open()
        try:
            applied = await store.migrate()
            version = await store.schema_version()
        finally:
            await store.close()
        err.print(f"applied {len(applied)} migration(s); schema version {version}")
        return 0

    raise typer.Exit(guard(go))
