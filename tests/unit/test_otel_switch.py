"""When runs are exported: ``FLOWTRAIL_OTEL`` decides when set, else an OTLP endpoint in
the environment does; a value that is not a switch is refused like any bad setting."""

from __future__ import annotations

import pytest

from flowtrail import otel
from flowtrail.errors import SettingsError
from flowtrail.otel.ids import block_span_id, trace_id, traceparent
from flowtrail.settings import Settings

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"FLOWTRAIL_OTEL": "1"}, True),
        ({"FLOWTRAIL_OTEL": "TRUE"}, True),
        ({"FLOWTRAIL_OTEL": " on "}, True),
        ({"FLOWTRAIL_OTEL": "0"}, False),
        ({"FLOWTRAIL_OTEL": "no"}, False),
        ({"FLOWTRAIL_OTEL": ""}, None),
    ],
)
def test_flowtrail_otel_is_read_as_a_switch(env: dict[str, str], expected: bool | None) -> None:
    assert Settings.from_env(env).otel is expected


def test_a_flowtrail_otel_that_is_not_a_switch_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"FLOWTRAIL_OTEL": "maybe"})
    assert err.value.code == "invalid_settings"
    assert "FLOWTRAIL_OTEL='maybe'" in str(err.value)


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, False),
        (None, ENDPOINT, True),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        (None, {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        (None, {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        (False, ENDPOINT, False),
        (True, {}, True),
    ],
)
def test_export_is_wanted(flag: bool | None, env: dict[str, str], expected: bool) -> None:
    assert otel.wanted(flag, env) is expected


def test_ids_are_the_run_id_and_stable_hashes() -> None:
    run_id = "01a2328e4a3d5e055e73866047e5968a"
    assert trace_id(run_id) == int(run_id, 16)
    other = trace_id("my-own-run-id")
    assert 0 < other < 2**128 and other == trace_id("my-own-run-id")
    assert trace_id("0" * 32) != 0  # the all-zero id is invalid: hashed instead
    one = block_span_id(run_id, "lp[0]", "call")
    assert one == block_span_id(run_id, "lp[0]", "call")
    assert (
        len({one, block_span_id(run_id, "lp[1]", "call"), block_span_id("x", "lp[0]", "call")}) == 3
    )
    assert traceparent(run_id, "lp[0]", "call") == f"00-{run_id}-{one:016x}-01"
