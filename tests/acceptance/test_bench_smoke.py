"""The benchmarks keep working (tiny sizes; their figures are not checked here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["engine.py", "markers.py"])
def test_benchmark_runs_and_reports_json(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--blocks", "20", "--repeat", "1",
         "--backends", "sqlite", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["targets"], "a benchmark states its targets"
    assert all("error" not in v for v in report["scenarios"].values())


def test_sweep_benchmark_runs_and_reports_json() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sweep.py"), "--runs", "1000", "--ending", "2",
         "--repeat", "1", "--backends", "sqlite", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    sqlite = report["scenarios"]["sqlite"]
    assert sqlite["rows"] == 1000 + 12 + 2 and sqlite["index_scans_only"] is True
    assert report["targets"], "a benchmark states its targets"


def test_api_benchmark_runs_and_reports_json() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api.py"), "--runs", "2000", "--samples", "5",
         "--deep-pages", "3", "--backends", "sqlite", "--no-browser", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    sqlite = report["scenarios"]["sqlite"]
    assert sqlite["rows"] == 2000
    for surface in ("store", "http"):
        assert sqlite[surface]["detail"]["p95_ms"] >= sqlite[surface]["detail"]["p50_ms"] > 0
    assert sqlite["store"]["first page"]["p95_ms"] > 0
    assert sqlite["server_peak_rss_mb"] > 0
    assert report["targets"], "a benchmark states its targets"


def test_otel_benchmark_runs_and_reports_json() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "otel.py"), "--blocks", "20", "--repeat", "1",
         "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # 2N + 3 and N + 2 spans, all flushed
    assert [r["spans"] for r in report["results"]] == [43, 22]
    assert report["otlp_bytes"] > 0


def test_versus_dbos_benchmark_flowtrail_only(tmp_path: Path) -> None:
    venv = tmp_path / "dbos-venv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "versus_dbos.py"), "--skip-dbos", "--small", "5",
         "--large", "20", "--repeat", "1", "--backends", "sqlite", "--json",
         "--dbos-venv", str(venv)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["dbos"] is None and not venv.exists(), "--skip-dbos installs nothing"
    assert set(report["scenarios"]) == {"sqlite/flowtrail", "sqlite/flowtrail/busy"}
    flowtrail = report["scenarios"]["sqlite/flowtrail"]
    for n in ("5", "10", "20"):  # whole-process wall times and peak RSS of each chain length
        assert flowtrail["seconds"][n] > 0 and flowtrail["peak_rss_mb"][n] > 0
    assert flowtrail["cold_start_s"] == flowtrail["seconds"]["10"]
    # 15 blocks apart the difference can drown in start-up noise: a number, of any sign.
    assert isinstance(flowtrail["marginal_us"], float)
    assert report["scenarios"]["sqlite/flowtrail/busy"]["seconds"]["20"] > 0
    [target] = report["targets"]
    assert (target["backend"], target["limit"]) == ("sqlite", 10.0)
    assert target["value"] is None and target["met"] is None  # no DBOS, no verdict


def test_per_block_benchmark_quick_without_dbos() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "per_block.py"), "--quick", "--skip-dbos",
         "--backends", "sqlite", "--repeat", "1", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["benchmark"] == "per_block" and not report["failed"]
    assert set(report["parts"]) == {"versus_dbos", "loading", "engine", "markers"}
    by_source: dict[str, list[dict[str, object]]] = {}
    for target in report["targets"]:
        assert {"name", "value", "limit", "unit", "met"} <= set(target)
        by_source.setdefault(str(target["source"]), []).append(target)
    # Measured here: a number and a verdict each (the figures themselves are not checked).
    assert len(by_source["loading"]) == 2  # 20 -> 100 and 100 -> 400 blocks
    assert len(by_source["engine"]) == 1 and by_source["engine"][0]["limit"] == 50.0
    assert by_source["markers"], "markers.py's overhead and round-trip targets, as it states them"
    for source in ("loading", "engine", "markers"):
        for target in by_source[source]:
            assert isinstance(target["value"], float | int), target
            assert isinstance(target["met"], bool), target
    # DBOS skipped: its target is listed, not measured.
    [dbos] = by_source["versus_dbos"]
    assert dbos["value"] is None and dbos["met"] is None and dbos["limit"] == 10.0
    reported = report["reported"]
    assert reported["validate_s"].keys() == {"20", "100", "400"}
    assert reported["peak_rss_mb_validate"]["400"] > 0
    assert reported["cold_start_t10_s"]["sqlite/flowtrail"] > 0
    assert "sqlite/flowtrail/busy" in reported["busy_marginal_us"]
