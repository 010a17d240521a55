"""``env.*`` reads only what the workflow declares under ``env:`` (and what
``FLOWTRAIL_ENV_ALLOW`` allows); errors never list the rest of the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowtrail.engine.executor import RunOptions
from flowtrail.errors import WorkflowValidationError
from flowtrail.model.compile import compile_file
from flowtrail.model.graph import Workflow
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from tests.integration.engine.engine_support import run_workflow

ENVIRON = {"APP_NAME": "shop", "AWS_SECRET_ACCESS_KEY": "aws-hidden", "HOME": "/root"}


def _workflow(tmp_path: Path, value: Any, env: list[str] | None = None) -> Workflow:
    doc: dict[str, Any] = {
        "name": "reads_env",
        "inputs": {"key": {"type": "string", "default": "APP_NAME"}},
        "blocks": {
            "start": {"type": "start"},
            "use": {"type": "function", "call": "engine_blocks:echo", "with": {"value": value}},
        },
        "connections": ["start -> use"],
    }
    if env is not None:
        doc["env"] = env
    path = tmp_path / "reads_env.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return compile_file(path)


async def test_a_declared_variable_is_readable(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "{{ env.APP_NAME }}", env=["APP_NAME", "UNSET_ONE"])
    result, _log = await run_workflow(wf, options=RunOptions(env=ENVIRON))
    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == {"result": "shop"}


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (
            "AWS_SECRET_ACCESS_KEY",
            "'env.AWS_SECRET_ACCESS_KEY' is not declared in the workflow's `env:` "
            "(declared: APP_NAME, UNSET_ONE)",
        ),
        ("UNSET_ONE", "environment variable 'UNSET_ONE' is not set"),
    ],
)
async def test_an_undeclared_or_unset_variable_is_not_read_and_no_other_is_named(
    tmp_path: Path, key: str, says: str
) -> None:
    # a computed name cannot be checked at validation: it is refused at run time
    wf = _workflow(tmp_path, "{{ env[start.key] }}", env=["APP_NAME", "UNSET_ONE"])
    result, _log = await run_workflow(wf, {"key": key}, options=RunOptions(env=ENVIRON))
    assert result.status is RunStatus.FAILED
    assert result.error == says
    assert "HOME" not in says and "aws-hidden" not in says
    # `default()` and `is defined` see it as missing
    wf = _workflow(tmp_path, "{{ env[start.key] | default('none') }}", env=["APP_NAME"])
    result, _log = await run_workflow(wf, {"key": key}, options=RunOptions(env=ENVIRON))
    assert result.output == {"result": "none"}


async def test_the_allow_list_limits_what_a_workflow_may_declare(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "{{ env.AWS_SECRET_ACCESS_KEY }}", env=["AWS_SECRET_ACCESS_KEY"])
    options = RunOptions(env=ENVIRON, env_allow=("APP_*",))
    result, _log = await run_workflow(wf, options=options)
    assert result.status is RunStatus.FAILED
    assert result.error == (
        "environment variable 'AWS_SECRET_ACCESS_KEY' is not allowed by FLOWTRAIL_ENV_ALLOW"
    )
    allowed = RunOptions(env=ENVIRON, env_allow=("APP_*", "AWS_*"))
    result, _log = await run_workflow(wf, options=allowed)
    assert result.output == {"result": "aws-hidden"}


def test_reading_an_undeclared_variable_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        _workflow(tmp_path, "{{ env.HOME }}", env=["APP_NAME"])
    (problem,) = caught.value.problems
    assert (problem.block_id, problem.code) == ("use", "bad_reference")
    assert problem.message == (
        "'env.HOME' is not declared: list it under the workflow's `env:` (declared: APP_NAME)"
    )


def test_the_allow_list_setting_is_read_from_the_environment() -> None:
    settings = Settings.from_env({"FLOWTRAIL_ENV_ALLOW": "APP_*, HOME"})
    assert settings.env_allow == ("APP_*", "HOME")
    assert Settings.from_env({}).env_allow is None
