"""The one error tree of flowtrail.

::

    FlowtrailError
    ├── WorkflowError                 a workflow file or definition is not valid
    │   ├── WorkflowParseError        malformed YAML/JSON (carries the line)
    │   └── WorkflowValidationError   one or more problems, each naming a block
    ├── InputError                    the run input does not match ``inputs:``
    │   └── BadCursorError            a run-list cursor that does not decode
    ├── SettingsError                 a setting (``FLOWTRAIL_*`` or ``Settings``) is not valid
    ├── BlockError                    a block failed while running
    │   ├── ReferenceResolutionError  a template/expression names a missing field
    │   ├── BlockTimeoutError         a block ran past its ``timeout``
    │   └── ExpressionLimitError      a template ran past its time, size or nesting limit
    ├── StoreError                    the database refused or could not be reached
    │   ├── StoreUnavailableError     connection-level failure (retried at finalization)
    │   └── DatabaseNotFoundError     no database there (reading never creates one)
    ├── RunNotFoundError              no run with that id in the database searched
    ├── AmbiguousRunIdError           a run id prefix that names several runs
    ├── QueueError                    the job queue cannot be used here (it needs PostgreSQL)
    └── RunStateError                 the run is not in a state that allows this
        └── MissingSecretError        a paused run needs a secret that is not set now

``RunNotFoundError`` is not a ``StoreError``: code that rides out database outages
(``except StoreError``) must not also swallow "no such run".

Cancellation is signalled with :class:`asyncio.CancelledError` (a ``BaseException``), so a
user's ``except Exception`` inside a function block can never swallow it.
"""

from __future__ import annotations

from dataclasses import dataclass


class FlowtrailError(Exception):
    """Base of every error flowtrail raises on purpose."""

    code: str = "flowtrail_error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow definition."""

    message: str
    block_id: str | None = None
    line: int | None = None
    file: str | None = None
    code: str = "invalid_workflow"

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.block_id:
            where.append(f"block '{self.block_id}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class WorkflowError(FlowtrailError):
    """A workflow file or definition is invalid; ``problems`` says what and where."""

    code = "invalid_workflow"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class WorkflowParseError(WorkflowError):
    code = "malformed_workflow"


class WorkflowValidationError(WorkflowError):
    code = "invalid_workflow"


class InputError(FlowtrailError):
    """A run's input does not fit the workflow's ``inputs:`` (nothing was run)."""

    code = "invalid_input"


class BadCursorError(InputError):
    """A run-list page cursor (``RunQuery.cursor``, ``flowtrail runs --cursor``, the
    API's ``cursor``) that is not one a previous page gave out."""

    code = "bad_cursor"


class SettingsError(FlowtrailError):
    """A setting given through a ``FLOWTRAIL_*`` variable or a ``Settings`` field is not
    valid; the message names the setting."""

    code = "invalid_settings"


class BlockError(FlowtrailError):
    """A block failed; ``block_id`` names it."""

    code = "block_failed"

    def __init__(self, message: str, block_id: str | None = None) -> None:
        self.block_id = block_id
        super().__init__(message)


class ReferenceResolutionError(BlockError):
    code = "unresolved_reference"


class BlockTimeoutError(BlockError):
    code = "block_timeout"


class ExpressionLimitError(BlockError):
    """A template ran past ``FLOWTRAIL_EXPRESSION_TIMEOUT_SECONDS``, would have built more
    than ``FLOWTRAIL_EXPRESSION_MAX_CHARS``, or is nested too deeply."""

    code = "expression_limit"


class StoreError(FlowtrailError):
    """The database refused or could not serve a request."""

    code = "store_error"


class StoreUnavailableError(StoreError):
    code = "store_unavailable"


class DatabaseNotFoundError(StoreError):
    """A read (``show``, ``runs``, ``cancel``, ``resume``) found no database at the URL;
    reads never create one."""

    code = "database_not_found"


class RunNotFoundError(FlowtrailError):
    """No run with that id. ``database`` is the (redacted) URL that was searched."""

    code = "run_not_found"

    def __init__(self, run_id: str, database: str | None = None) -> None:
        self.run_id = run_id
        self.database = database
        where = f" in {database}" if database else ""
        super().__init__(f"no run with id '{run_id}'{where}")


class AmbiguousRunIdError(FlowtrailError):
    """A run id prefix matched more than one run; ``candidates`` are (some of) them."""

    code = "ambiguous_run_id"

    def __init__(self, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates) + (", …" if more else "")
        super().__init__(
            f"run id '{prefix}' is ambiguous: {'more than ' if more else ''}"
            f"{len(candidates)} runs start with it ({listed}); give more characters"
        )


class QueueError(FlowtrailError):
    """Queued runs and workers need PostgreSQL (the queue is Procrastinate); raised for
    another database, naming PostgreSQL."""

    code = "queue_unavailable"


class RunStateError(FlowtrailError):
    """The run is in the wrong state for the request (resuming a run that is not paused)."""

    code = "invalid_run_state"


class MissingSecretError(RunStateError):
    """A paused run's snapshot refers to a secret that is not set in this process."""

    code = "missing_secret"

    def __init__(self, name: str) -> None:
        self.name = name
        variable = name if name.startswith("FLOWTRAIL_") else f"FLOWTRAIL_SECRET_{name}"
        super().__init__(
            f"the paused run needs secret '{name}', which is not set now (set {variable})"
        )
