"""schemathesis against the published OpenAPI of ``flowtrail serve``: no 5xx, and every
answer (status, content type, headers, body, each server-sent event) as the schema
documents it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.acceptance.apitools import (
    OPERATOR_TOKEN,
    READ_TOKEN,
    listening_url,
    serve_process,
    stop_serving,
    write_workflows,
)
from tests.conftest import migrate_url

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'flowtrail.db'}"
    migrate_url(db)
    folder = write_workflows(tmp_path / "workflows")
    for name in ("sleepy", "steps"):  # nothing that runs long: every stream must end
        (folder / f"{name}.yaml").unlink()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"read {READ_TOKEN}\noperator {OPERATOR_TOKEN}\n")
    proc = serve_process(
        db, tmp_path, "--port", "0", "--workflows", str(folder), "--tokens", str(tokens)
    )
    try:
        url = listening_url(proc)
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        ran = httpx.post(
            f"{url}/api/v1/workflows/hello/runs", json={"input": {"name": "st"}}, headers=auth
        )
        assert ran.status_code == 200, ran.text
        # the generated requests name a run and a workflow that exist, so they reach the
        # code behind the 404s, not only the 404s
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'[parameters]\n"path.run_id" = "{ran.json()["id"]}"\n"path.name" = "hello"\n'
        )
        result = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "--no-color",
                "--config-file", str(config), "run", f"{url}/openapi.json",
                "--checks", CHECKS,
                "--max-examples", "25",
                "--request-timeout", "30",
                "--header", f"Authorization: Bearer {OPERATOR_TOKEN}",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    finally:
        stop_serving(proc)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
