"""10. ``make demo`` on a quiet and on a loaded machine: the verdict must not depend on the machine.

The default demo (900 files at 10 files/s, 15 s function timeout, two receives before the DLQ, moto in
its own process) runs twice in this process: once on the idle machine, once beside two CPU-bound
processes that keep both cores busy. Correctness (nothing lost, doubled or altered, only the poison in
the DLQ) and delivery must hold both times; latency and invocation times are reported as measured.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.common import LOAD_PROCESSES, Result, Scale, Table, Target, busy_neighbours


def run(scale: Scale) -> Result:
    from data_aggregator.sandbox.checks import percentile
    from data_aggregator.sandbox.demo import DemoOptions, run_demo
    from data_aggregator.sandbox.uploader import SizeMix

    smoke = scale.name == "smoke"
    result = Result(name="demo", title="10. The demo on a quiet and on a loaded machine", scale=scale.name)
    options = DemoOptions()
    if smoke:
        options = replace(
            options,
            rate=50.0,
            count=20,
            batch_size=10,
            window_seconds=0.5,
            function_timeout_seconds=5.0,
            claim_lease_seconds=6,
            visibility_timeout=7,
            stall_timeout_seconds=30.0,
            mix=SizeMix(small_max=3000, large_every=0),
        )
    rows: list[tuple[str | int | float, ...]] = []
    passed: list[bool] = []
    # The default run, quiet and loaded; then overdriven on the loaded machine (four times the rate, a
    # 4 s timeout), where invocations cannot finish their batches and must defer part of them.
    runs = [("quiet", "quiet", options, False)]
    if not smoke:
        overdriven = replace(options, rate=40.0, function_timeout_seconds=4.0)
        runs += [
            ("loaded", "loaded", options, True),
            ("overdriven", "loaded, 40 files/s, 4 s timeout", overdriven, True),
        ]
    for key, label, run_options, loaded in runs:
        with (
            tempfile.TemporaryDirectory(prefix="bench-demo-") as workdir,
            busy_neighbours(LOAD_PROCESSES) if loaded else contextlib.nullcontext(),
        ):
            report = run_demo(replace(run_options, workdir=Path(workdir)), status=io.StringIO())
        where = report.whereabouts
        r = report.reconciliation
        passed.append(report.ok)
        rows.append(
            (
                label,
                "PASS" if report.ok else "FAIL",
                f"{r.bundled}/{r.uploaded}",
                len(r.duplicated),
                len(where.dead_lettered),
                len(where.late),
                len(where.lost),
                report.deferred_messages,
                f"{percentile(report.invocation_seconds, 0.5):.1f} / {max(report.invocation_seconds, default=0.0):.1f}",
                round(percentile(r.latencies, 0.95), 1),
                round(report.elapsed_seconds, 1),
            )
        )
        result.figures[f"{key}_elapsed_s"] = report.elapsed_seconds
        result.figures[f"{key}_latency_p95_s"] = percentile(r.latencies, 0.95)
        result.figures[f"{key}_invocation_p50_s"] = percentile(report.invocation_seconds, 0.5)
    result.tables.append(
        Table(
            title=f"make demo: {options.count} files at {options.rate:g}/s, {options.function_timeout_seconds:g} s "
            f"timeout, maxReceiveCount {options.max_receive_count}",
            headers=(
                "machine",
                "result",
                "delivered",
                "doubled",
                "dead-lettered",
                "late",
                "lost",
                "deferred",
                "invocation p50 / max s",
                "p95 latency s",
                "elapsed s",
            ),
            rows=tuple(rows),
            notes=(
                f"loaded: {LOAD_PROCESSES} CPU-bound processes beside the demo on the 2-core machine",
                "deferred: messages an invocation had no time for, sent back to the queue (not failures)",
            ),
        )
    )
    result.targets.append(
        Target("the demo passes on a quiet, a loaded and an overdriven machine", all(passed), str(rows))
    )
    return result
