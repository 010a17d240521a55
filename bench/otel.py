"""What OpenTelemetry export costs a run (report-only: nothing is asserted).

A parallel of N function blocks (2N + 3 spans) and a chain of N, on SQLite, each run
with export off and with export on to a real OTLP/HTTP receiver on 127.0.0.1 (the SDK's
``OTLPSpanExporter`` behind its ``BatchSpanProcessor``, as ``flowtrail run`` uses it).
Printed per workload: the run's wall time both ways (median of ``--repeat``), and how
long after the run returned its spans were built and acknowledged by the receiver (the
export's own lag, off the run's path), with the spans per second that makes.

    .venv/bin/python bench/otel.py --blocks 1000 --repeat 3
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compile_workload, databases, make_runner, median, note, open_bench_store


class Receiver:
    def __init__(self) -> None:
        self.bytes = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                owner.bytes += len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/traces"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


async def measure(
    url: str, workload: str, n: int, repeat: int, receiver: Receiver
) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from flowtrail import otel

    workflow = compile_workload(workload, n, "sync")
    store = await open_bench_store(url)
    try:
        runner = make_runner(store, url, 64)
        off, on, lag = [], [], []
        spans = 0
        for _ in range(repeat):
            otel.uninstall()
            t0 = time.perf_counter()
            await runner.run(workflow, None)
            off.append(time.perf_counter() - t0)
            otel.install(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url)))
            t0 = time.perf_counter()
            report = await runner.run(workflow, None)
            on.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            assert otel.flush(120)
            lag.append(time.perf_counter() - t1)
            spans = (await store.get_run(report.run_id)).trace_span_count
            otel.uninstall()
        return {
            "workload": workload,
            "blocks": n,
            "spans": spans,
            "run_off_ms": median(off) * 1000,
            "run_on_ms": median(on) * 1000,
            "export_lag_ms": median(lag) * 1000,
            "spans_per_s": spans / median(lag) if median(lag) else None,
        }
    finally:
        await store.close()


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--blocks", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    receiver = Receiver()
    results = []
    with databases(["sqlite"], "", False) as dbs:
        for workload in ("parallel", "chain"):
            note(f"{workload} x {args.blocks} ...")
            results.append(
                asyncio.run(
                    measure(dbs.url("sqlite"), workload, args.blocks, args.repeat, receiver)
                )
            )
    if args.json:
        print(json.dumps({"results": results, "otlp_bytes": receiver.bytes}, indent=2))
        return
    heads = ("workload", "blocks", "spans", "run off ms", "run on ms", "export lag ms", "spans/s")
    print("  ".join(f"{h:>13}" for h in heads))
    for r in results:
        cells = (r["workload"], r["blocks"], r["spans"], r["run_off_ms"], r["run_on_ms"],
                 r["export_lag_ms"], r["spans_per_s"])  # fmt: skip
        print("  ".join(f"{c:>13.0f}" if isinstance(c, float) else f"{c:>13}" for c in cells))
    print(f"OTLP bytes received: {receiver.bytes}")


if __name__ == "__main__":
    main()
