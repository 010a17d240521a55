"""The error tree: each error has its own class and code, and "not found" is not an
outage (``except StoreError`` must not swallow it)."""

from __future__ import annotations

import pytest

from flowtrail import errors
from flowtrail.diagnostics.masking import Sealer
from flowtrail.errors import (
    DatabaseNotFoundError,
    FlowtrailError,
    MissingSecretError,
    RunNotFoundError,
    RunStateError,
    SettingsError,
    StoreError,
)
from flowtrail.settings import Settings
from flowtrail.store.common import redact_url


def test_run_not_found_is_not_a_store_error() -> None:
    exc = RunNotFoundError("r1", "sqlite:///x.db")
    assert isinstance(exc, FlowtrailError) and not isinstance(exc, StoreError)
    assert str(exc) == "no run with id 'r1' in sqlite:///x.db"
    assert issubclass(DatabaseNotFoundError, StoreError)


def test_a_missing_secret_is_its_own_error_not_a_key_error() -> None:
    sealed = Sealer({"TOKEN": "s3cr3t-value"}).seal({"h": "Bearer s3cr3t-value"})
    with pytest.raises(MissingSecretError) as caught:
        Sealer({}).unseal(sealed)
    assert not isinstance(caught.value, KeyError)
    assert isinstance(caught.value, RunStateError)
    assert caught.value.code == "missing_secret" and caught.value.name == "TOKEN"
    assert "FLOWTRAIL_SECRET_TOKEN" in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"FLOWTRAIL_MAX_CONCURRENCY": "many"}, "FLOWTRAIL_MAX_CONCURRENCY"),
        ({"FLOWTRAIL_MAX_CONCURRENCY": "0"}, "max_concurrency"),
        ({"FLOWTRAIL_FINALIZE_RETRY_SECONDS": "nan"}, "finalize_retry_seconds"),
        ({"FLOWTRAIL_MAX_OUTPUT_BYTES": "10"}, "max_output_bytes"),
        ({"FLOWTRAIL_PRICES": "[1"}, "FLOWTRAIL_PRICES"),
    ],
)
def test_bad_settings_raise_settings_error(environ: dict[str, str], field: str) -> None:
    with pytest.raises(SettingsError, match=field) as caught:
        Settings.from_env(environ)
    assert type(caught.value) is SettingsError and caught.value.code == "invalid_settings"


def test_every_error_code_is_distinct() -> None:
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, FlowtrailError) and c is not FlowtrailError
    ]
    codes = [c.code for c in classes if c is not errors.WorkflowValidationError]
    assert len(codes) == len(set(codes)), codes


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////abs/path/flowtrail.db", "sqlite:////abs/path/flowtrail.db"),
        ("sqlite:///rel/flowtrail.db", "sqlite:///rel/flowtrail.db"),
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=***"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
