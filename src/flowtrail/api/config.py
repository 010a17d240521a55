"""What ``flowtrail serve`` is given: the database, the address, the workflows it serves
and who may call it."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flowtrail.api.auth import ENV, Tokens
from flowtrail.api.limits import DEFAULT_MAX_BODY_BYTES
from flowtrail.errors import SettingsError, WorkflowError
from flowtrail.model.compile import compile_file
from flowtrail.model.graph import Workflow
from flowtrail.settings import Settings
from flowtrail.store.readers import DEFAULT_READERS

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class ServeConfig:
    settings: Settings = field(default_factory=Settings)
    host: str = "127.0.0.1"
    port: int = 8000
    workflows_dir: Path | None = None
    """The folder whose workflow files the server starts runs of (none: it starts none)."""
    tokens: Tokens | None = None
    """None: no auth, every caller is an operator (only allowed on loopback or with
    ``no_auth``)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    readers: int = DEFAULT_READERS
    """Connections the routes read through (``ReaderPool``), beside the one writer."""
    poll_seconds: float = 0.5
    """How often the event stream of a run reads its row and steps."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_tokens(path: Path | None, environ: Mapping[str, str]) -> Tokens | None:
    """The tokens file, else ``FLOWTRAIL_API_TOKENS``, else none."""
    if path is not None:
        return Tokens.from_file(path)
    if environ.get(ENV):
        return Tokens.from_env(environ[ENV])
    return None


def check_exposure(host: str, tokens: Tokens | None, no_auth: bool) -> None:
    """A server reachable from other machines needs tokens, unless auth is turned off on
    purpose."""
    if tokens is None and not no_auth and not is_loopback(host):
        raise SettingsError(
            f"refusing to serve on {host} without auth: give --tokens FILE (or set {ENV}), "
            "or pass --no-auth to serve it open on purpose"
        )


def load_workflows(folder: Path) -> dict[str, Workflow]:
    """Every workflow file directly in ``folder``, by workflow name. A file that does not
    compile, or two files with one name, stop the server from starting."""
    if not folder.is_dir():
        raise SettingsError(f"--workflows {folder}: not a folder")
    found: dict[str, Workflow] = {}
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in WORKFLOW_SUFFIXES or not path.is_file():
            continue
        try:
            workflow = compile_file(path)
        except WorkflowError as exc:
            problems.append(str(exc))
            continue
        if workflow.name in found:
            problems.append(
                f"{path}: workflow '{workflow.name}' is also defined in "
                f"{found[workflow.name].source}"
            )
            continue
        found[workflow.name] = workflow
    if problems:
        raise SettingsError(f"--workflows {folder}: " + "\n".join(problems))
    return found
