"""6. The N2 burst: 100 files/s for 60 s through the whole pipeline, on the local-aws backend.

SPEC N2 asks for bursts of 100 files/s without degradation, and N1 for p95 <= 120 s and p99.9 <= 180 s
from landing to Distribution. This runs the ``make demo`` sandbox (the synthetic uploader with the
demo's size mix, S3 notifications, the emulated event source mapping with two pollers, the real
handler, the reference consumer verifying every bundle) with production batching (batch 1,000,
window 20 s, timeout 60 s) on LocalStack's S3 and SQS with Amazon DynamoDB Local, the backend that
can carry the load: moto's single Python server spends ~5 ms of CPU per S3 call and caps the
embedded pipeline near 20 files/s (section 5).

Everything shares one two-core machine, so the run also says where the CPU went: each server
process's CPU-seconds over the run next to this process's (uploader, pollers, handler, consumer), and
what one call costs each server. When the machine, not the pipeline, binds, that table shows it.

``python -m benchmarks.burst --plot docs/burst-latency.png`` runs the full burst and draws latency
over time; ``make bench BENCH_ARGS=burst`` runs it with the other benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Self

from benchmarks.common import FULL, SMOKE, Result, Scale, Table, Target, percentile
from benchmarks.e2e import N1_TARGETS, Load, LoadRun, call_costs, cpu_seconds, measure_load, production_options
from e2e_tests.memory import KIB, reset_peak, status_kib

if TYPE_CHECKING:
    from data_aggregator.sandbox.backends import BackendName

FULL_LOAD = Load("burst 100 files/s for 60 s", 100.0, 6_000)
SMOKE_LOAD = Load("smoke", 40.0, 12)
MINIMUM_RATE = 50.0  # the floor for what the machine must reach if something else binds first
PIPELINE = "pipeline (this process)"


def peak_rss_mib(pid: int | str = "self") -> float:
    """The kernel's high-water mark of a process's resident memory (VmHWM), in MiB."""
    kib = status_kib("VmHWM", pid)
    return kib / KIB if kib is not None else float("nan")


def thread_role(name: str) -> str:
    """Which part of the pipeline a thread of this process works for, by the name the sandbox gives it."""
    if name.startswith("uploader"):
        return "uploader (generate, hash, PutObject)"
    if name == "consumer":
        return "consumer (download, verify, extract)"
    if name == "burst-cpu-sampler":
        return "measurement"
    if "process_request_thread" in name:  # moto's server, when it runs in this process (the smoke run)
        return "in-process emulator"
    # The pollers run the handler; its fetch, upload and compression pools are the handler's too.
    return "pollers + handler"


class ThreadCpuSampler:
    """CPU time of this process's threads by role, sampled often enough to count short-lived pool threads.

    /proc only lists live threads, so each thread's CPU time is read every ``interval`` seconds and
    the last reading kept; a thread's final fraction of an interval is lost, which the total for the
    whole process (read separately) shows.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="burst-cpu-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None:
                continue
            try:
                spent = cpu_seconds(f"{os.getpid()}/task/{tid}")
            except (OSError, IndexError, ValueError):
                continue
            self._last[tid] = (thread_role(thread.name), spent)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def by_role(self, baseline: dict[int, float]) -> dict[str, float]:
        """CPU-seconds per role since ``baseline`` (thread id -> CPU time when the run started)."""
        totals: dict[str, float] = {}
        for tid, (role, spent) in self._last.items():
            totals[role] = totals.get(role, 0.0) + spent - baseline.get(tid, 0.0)
        return totals


def thread_cpu_now() -> dict[int, float]:
    """Each live thread's CPU time now, to subtract what threads did before the run."""
    now: dict[int, float] = {}
    for thread in threading.enumerate():
        if thread.native_id is not None:
            with contextlib.suppress(OSError, IndexError, ValueError):
                now[thread.native_id] = cpu_seconds(f"{os.getpid()}/task/{thread.native_id}")
    return now


@dataclass(slots=True)
class BurstRun:
    """One burst with the CPU each process spent on it."""

    load: Load
    backend: str
    run: LoadRun
    wall_seconds: float
    cpu: dict[str, float]
    peak_rss_mib: float
    server_peak_rss_mib: dict[str, float]
    pipeline_cpu_by_role: dict[str, float]


def burst(backend_name: BackendName, load: Load, smoke: bool) -> tuple[BurstRun, Table]:
    """Start the backend, measure what one call costs each server, then run the burst on it."""
    from data_aggregator.sandbox.backends import backend_for

    with backend_for(backend_name, own_process=False) as backend:
        costs = call_costs(backend, calls=5 if smoke else 200)
        servers = backend.server_pids()
        before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        before[PIPELINE] = cpu_seconds(os.getpid())
        reset_peak()
        started = time.monotonic()
        baseline = thread_cpu_now()
        with ThreadCpuSampler() as sampler:
            run = measure_load(backend, load, production_options(load, smoke))
        wall = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in servers.items()}
        cpu[PIPELINE] = cpu_seconds(os.getpid()) - before[PIPELINE]
        server_rss = {name: peak_rss_mib(pid) for name, pid in servers.items()}
    roles = sampler.by_role(baseline)
    roles["not attributed (threads that ended between samples)"] = max(0.0, cpu[PIPELINE] - sum(roles.values()))
    return BurstRun(load, backend_name, run, wall, cpu, peak_rss_mib(), server_rss, roles), costs


def run(scale: Scale) -> Result:
    """``make bench`` entry point: the full burst on local-aws, or a few files on moto for the smoke test."""
    smoke = scale.name == SMOKE.name
    backend_name: BackendName = "moto" if smoke else "local-aws"
    measured, costs = burst(backend_name, SMOKE_LOAD if smoke else FULL_LOAD, smoke)
    return result_of(measured, costs, scale)


def result_of(measured: BurstRun, costs: Table, scale: Scale) -> Result:
    """Tables and targets from one burst."""
    result = Result(name="burst", title="6. The N2 burst on the local-aws backend", scale=scale.name)
    report = measured.run.report
    reconciliation = report.reconciliation
    latencies = reconciliation.latencies
    p50, p95, p999 = (percentile(latencies, pct) for pct in (50.0, 95.0, 99.9))
    reached = measured.run.achieved_rate
    lost, doubled = len(reconciliation.missing), len(reconciliation.duplicated)
    invocation_p50 = statistics.median(report.invocation_seconds) if report.invocation_seconds else float("nan")
    result.tables.append(
        Table(
            title="Landing -> Distribution on the whole pipeline, production batching",
            headers=(
                "backend",
                "rate asked /s",
                "rate reached /s",
                "files",
                "p50 s",
                "p95 s",
                "p99.9 s",
                "max s",
                "invocations",
                "invocation p50 s",
                "lost",
                "duplicates",
                "peak RSS MiB (pipeline)",
            ),
            rows=(
                (
                    measured.backend,
                    measured.load.rate,
                    reached,
                    reconciliation.uploaded,
                    p50,
                    p95,
                    p999,
                    max(latencies, default=float("nan")),
                    report.invocations,
                    invocation_p50,
                    lost,
                    doubled,
                    measured.peak_rss_mib,
                ),
            ),
            notes=(
                "latency: end of PutObject -> the consumer (polling every 0.5 s) first sees the bundle in Distribution",
                "settings: batch 1,000, window 20 s, timeout 60 s, lease 300 s, visibility 420 s, 2 pollers; the "
                "demo's size mix (mostly 1-120 KB JSON lines, one file in 50 of 1-4 MB)",
                "peak RSS: this process, which holds the uploader, the pollers, the handler and the consumer",
            ),
        )
    )
    total_cpu = sum(measured.cpu.values())
    wall = measured.wall_seconds
    rows: list[tuple[str | int | float, ...]] = [
        (
            name,
            spent,
            spent / wall,
            spent / total_cpu * 100 if total_cpu else 0.0,
            measured.server_peak_rss_mib.get(name, measured.peak_rss_mib),
        )
        for name, spent in sorted(measured.cpu.items(), key=lambda item: -item[1])
    ]
    rows.append(("all", total_cpu, total_cpu / wall, 100.0, "-"))
    files = max(1, reconciliation.uploaded)
    per_file = [
        (name, spent / files * 1000, spent / total_cpu * 100 if total_cpu else 0.0)
        for name, spent in sorted(
            {
                **{k: v for k, v in measured.cpu.items() if k != PIPELINE},
                **measured.pipeline_cpu_by_role,
            }.items(),
            key=lambda item: -item[1],
        )
    ]
    per_file.append(("all", total_cpu / files * 1000, 100.0))
    result.tables.append(
        Table(
            title=f"Where the CPU went during the burst ({wall:.0f} s of wall time, {os.cpu_count()} cores)",
            headers=("process", "CPU s", "cores busy (mean)", "share %", "peak RSS MiB"),
            rows=tuple(rows),
            notes=("cores busy: CPU-seconds over wall seconds; the machine is saturated near its core count",),
        )
    )
    result.tables.append(
        Table(
            title="CPU per file, by server and by part of the pipeline process",
            headers=("spent in", "CPU ms per file", "share %"),
            rows=tuple(per_file),
            notes=(
                f"the rate the whole machine could sustain is about {os.cpu_count()} cores / CPU per file: "
                f"{(os.cpu_count() or 1) * 1000 / max(1e-9, total_cpu / files * 1000):.0f} files/s",
                "pipeline threads are sampled every 0.25 s; the last fraction of a short-lived thread is not counted",
            ),
        )
    )
    result.tables.append(costs)
    result.figures.update(
        {"rate_reached": reached, "p50_s": p50, "p95_s": p95, "p99.9_s": p999, "cores_busy": total_cpu / wall}
    )
    n1 = p95 <= N1_TARGETS[0][1] and p999 <= N1_TARGETS[1][1]
    result.targets.extend(
        [
            Target(
                f"N1 during the burst: p95 <= {N1_TARGETS[0][1]:.0f} s, p99.9 <= {N1_TARGETS[1][1]:.0f} s",
                n1 and bool(latencies),
                f"p95 {p95:.1f} s, p99.9 {p999:.1f} s over {len(latencies)} files",
            ),
            Target(
                "every file delivered once, none lost or doubled",
                reconciliation.ok
                and reconciliation.bundled == reconciliation.uploaded
                and not report.correctness_problems,
                f"{reconciliation.bundled} of {reconciliation.uploaded} delivered, {lost} lost, {doubled} doubled",
            ),
            Target(
                f"the rate asked reached ({measured.load.rate:.0f} files/s; at least {MINIMUM_RATE:.0f})",
                reached >= 0.95 * measured.load.rate,
                f"{reached:.1f} files/s reached",
            ),
        ]
    )
    return result


def plot(measured: BurstRun, path: Path) -> None:
    """Latency of every file against when it landed, with files landed and delivered so far above it."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    reconciliation = measured.run.report.reconciliation
    start = min(reconciliation.landed_at)
    landed = [t - start for t in reconciliation.landed_at]
    delivered = [t + latency for t, latency in zip(landed, reconciliation.latencies, strict=True)]
    figure, (rates, latency) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=(1, 2))
    # Cumulative counts: the gap between the two curves is the backlog, its width the latency.
    rates.plot(sorted(landed), range(1, len(landed) + 1), label="landed")
    rates.plot(sorted(delivered), range(1, len(delivered) + 1), label="delivered to Distribution")
    rates.set_ylabel("files (cumulative)")
    rates.legend(loc="lower right")
    rates.set_title(
        f"{measured.load.rate:.0f} files/s asked, {measured.run.achieved_rate:.0f} reached, "
        f"{len(landed):,} files on {measured.backend}; batch 1,000, window 20 s"
    )
    latency.scatter(landed, reconciliation.latencies, s=2, alpha=0.4, label="one file")
    latency.axhline(N1_TARGETS[0][1], color="tab:orange", linestyle="--", label="N1 p95 target (120 s)")
    latency.axhline(N1_TARGETS[1][1], color="tab:red", linestyle="--", label="N1 p99.9 target (180 s)")
    latency.set_xlabel("seconds since the first file landed")
    latency.set_ylabel("landing -> Distribution (s)")
    latency.set_ylim(bottom=0)
    latency.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the full burst once, print its tables, and optionally draw the plot."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.burst", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", type=Path, help="write the latency-over-time plot (PNG) here")
    parser.add_argument("--backend", choices=("moto", "local-aws"), default="local-aws")
    parser.add_argument("--rate", type=float, default=FULL_LOAD.rate, help="files per second (default 100)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to upload (default 60)")
    args = parser.parse_args(argv)
    load = replace(
        FULL_LOAD,
        label=f"burst {args.rate:g} files/s for {args.seconds:g} s",
        rate=args.rate,
        count=round(args.rate * args.seconds),
    )
    measured, costs = burst(args.backend, load, smoke=False)
    result = result_of(measured, costs, FULL)
    print(result.render())
    for target in result.targets:
        print(f"* [{'met' if target.met else 'MISSED'}] {target.name}: {target.detail}")
    if args.plot is not None:
        plot(measured, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
