"""5. End to end on the embedded pipeline: landing-to-Distribution latency against SPEC N1.

This reuses the sandbox that ``make demo`` runs (moto's server, provisioning, the synthetic uploader,
the emulated SQS event source mapping with the real handler in-process, the reference consumer) with
the production latency settings from docs/latency-budget.md: batches of 1,000, a 20 s batching
window, a 60 s function timeout. Two loads: the N2 baseline of 10 files/s and a 100 files/s burst.

Latency is measured per file from the end of its PutObject to the moment the consumer first sees its
bundle in Distribution, so it includes S3-to-SQS delivery, the window, the invocation and the two
bundle uploads, exactly the path of SPEC N1. The baseline it is judged against is the N1 target and
the budget the infrastructure was sized with (95% path 42 s, 99.9% path 142 s).

What the figures cannot show: moto delivers S3 events to SQS instantly (real S3 takes seconds, with
a budgeted tail of 60 s), every AWS call goes to one local server process that shares two cores with
the uploader, the pollers, the handler and the consumer, and a call costs that server milliseconds of
CPU. The emulator table measures those per-call costs, and the achieved upload rate says whether the
uploader could even produce the requested load.
"""

from __future__ import annotations

import io
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

from benchmarks.common import Result, Scale, Table, Target, percentile

N1_TARGETS = ((95.0, 120.0), (99.9, 180.0))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BUDGET = "95% path 42 s, 99.9% path 142 s (docs/latency-budget.md)"


@dataclass(frozen=True, slots=True)
class Load:
    label: str
    rate: float
    count: int


def loads(scale: Scale) -> list[Load]:
    if scale.name == "smoke":
        return [Load("smoke", 50.0, 8)]
    return [Load("baseline 10 files/s for 90 s", 10.0, 900), Load("burst 100 files/s for 15 s", 100.0, 1_500)]


if TYPE_CHECKING:
    from data_aggregator.sandbox.backends import Backend
    from data_aggregator.sandbox.demo import DemoOptions
    from data_aggregator.sandbox.demo_report import DemoReport


def run(scale: Scale) -> Result:
    from data_aggregator.sandbox.emulator import Emulator

    result = Result(name="e2e", title="5. End to end on the embedded pipeline", scale=scale.name)
    smoke = scale.name == "smoke"
    with Emulator() as emulator:
        result.tables.append(call_costs(emulator, calls=5 if smoke else 100))
        rows: list[tuple[str | int | float, ...]] = []
        for load in loads(scale):
            rows.append(run_load(emulator, load, smoke, result))
    result.tables.insert(
        0,
        Table(
            title="Landing -> Distribution latency (seconds), real handler behind the emulated event source mapping",
            headers=(
                "load",
                "files",
                "achieved upload/s",
                "bundles",
                "invocations",
                "invocation p50 s",
                "p50",
                "p95",
                "p99.9",
                "max",
                "N1 met",
                "loss/dup",
                "msgs retried",
                "emulator 500s",
            ),
            rows=tuple(rows),
            notes=(
                "latency: end of PutObject -> the consumer (polling every 0.5 s) first sees the bundle in Distribution",
                "N1: p95 <= 120 s and p99.9 <= 180 s; p99.9 of fewer than 1,000 files is the maximum",
                f"budget the infrastructure was sized with: {BUDGET}",
                "settings: batch 1,000, window 20 s, timeout 60 s, lease 300 s, visibility 420 s, 2 pollers"
                if not smoke
                else "smoke settings: batch 10, window 0.5 s",
                "loss/dup counts files missing, duplicated or altered after reconciling every upload (must be 0)",
                "msgs retried: messages the handler reported as failed (SQS redelivers them); emulator 500s: "
                "requests moto's server failed internally (botocore retried them)",
            ),
        ),
    )
    return result


@dataclass(slots=True)
class LoadRun:
    """One load through the sandbox: the demo's verdict, how long the uploads took, the emulator's 500s."""

    report: DemoReport
    upload_seconds: float
    server_errors: list[str]

    @property
    def achieved_rate(self) -> float:
        """Files per second the uploader really produced (below the asked rate when it could not keep up)."""
        uploaded = self.report.reconciliation.uploaded
        return uploaded / self.upload_seconds if self.upload_seconds > 0 else float("nan")


def run_load(emulator: object, load: Load, smoke: bool, result: Result) -> tuple[str | int | float, ...]:
    """One load, its N1 and integrity targets added to ``result``; the table row for it."""
    run = measure_load(emulator, load, production_options(load, smoke))
    report, server_errors = run.report, run.server_errors
    achieved = run.achieved_rate
    reconciliation = report.reconciliation
    latencies = reconciliation.latencies
    p95, p999 = percentile(latencies, 95.0), percentile(latencies, 99.9)
    n1 = p95 <= N1_TARGETS[0][1] and p999 <= N1_TARGETS[1][1]
    problems = len(reconciliation.missing) + len(reconciliation.duplicated) + len(reconciliation.altered)
    result.figures[f"p95_s[{load.label}]"] = p95
    result.figures[f"p99.9_s[{load.label}]"] = p999
    result.targets.append(
        Target(
            f"N1 at {load.label}: p95 <= 120 s, p99.9 <= 180 s",
            n1 and bool(latencies),
            f"p95 {p95:.1f} s, p99.9 {p999:.1f} s over {len(latencies)} files",
        )
    )
    result.targets.append(
        Target(
            f"no file lost, doubled or altered at {load.label}",
            reconciliation.ok and reconciliation.bundled == reconciliation.uploaded and not report.correctness_problems,
            f"{reconciliation.bundled} of {reconciliation.uploaded} bundled; "
            + ("; ".join(report.correctness_problems) if report.correctness_problems else "every check passed"),
        )
    )
    invocation_p50 = statistics.median(report.invocation_seconds) if report.invocation_seconds else float("nan")
    return (
        load.label,
        reconciliation.uploaded,
        achieved,
        report.bundles,
        report.invocations,
        invocation_p50,
        percentile(latencies, 50.0),
        p95,
        p999,
        max(latencies, default=float("nan")),
        n1,
        problems,
        report.failed_messages,
        ", ".join(f"{n} {where}" for where, n in Counter(server_errors).most_common()) or "0",
    )


def production_options(load: Load, smoke: bool) -> DemoOptions:
    """The demo's options for a load.

    Full: the deployed latency budget (docs/latency-budget.md), so the figures speak for production
    settings. Smoke: a tiny window and short leases so the run ends in seconds.
    """
    from data_aggregator.sandbox.demo import DemoOptions

    options = DemoOptions(
        rate=load.rate,
        count=load.count,
        batch_size=1_000,
        window_seconds=20.0,
        function_timeout_seconds=60.0,
        claim_lease_seconds=300,
        visibility_timeout=420,
        max_receive_count=10,
        pollers=2,
        poison=0,
        duplicates=0,
        drain_timeout_seconds=300.0,
        environment_name=f"bench-{uuid.uuid4().hex[:8]}",
    )
    if not smoke:
        return options
    return replace(
        options,
        batch_size=10,
        window_seconds=0.5,
        function_timeout_seconds=5.0,
        claim_lease_seconds=6,
        visibility_timeout=7,
        max_receive_count=3,
        pollers=1,
        drain_timeout_seconds=60.0,
        consumer_interval_seconds=0.1,
    )


def measure_load(backend: object, load: Load, options: DemoOptions) -> LoadRun:
    """Run the sandbox once at ``load`` on a running backend; the uploads are timed to tell the rate reached."""
    from data_aggregator.sandbox import demo

    schedule: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-e2e-") as workdir,
        mock.patch.object(demo, "SyntheticUploader", timed_uploader(schedule)),
        emulator_errors() as server_errors,
    ):
        report = demo.run_demo(
            replace(options, workdir=Path(workdir)),
            emulator=backend,  # type: ignore[arg-type]
            status=io.StringIO() if load.count < 100 else sys.stderr,
        )
    return LoadRun(report=report, upload_seconds=schedule[0] if schedule else 0.0, server_errors=server_errors)


class _ErrorCounter(logging.Filter):
    """Counts and swallows the server's internal errors, which it would print as tracebacks."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            frames = re.findall(r"moto/(\w+)/[\w/]+\.py\", line \d+, in (\w+)", record.getMessage())
            self.errors.append(".".join(frames[-1]) if frames else "unknown")
            return False
        return True


@contextmanager
def emulator_errors() -> Iterator[list[str]]:
    counter = _ErrorCounter()
    server_log = logging.getLogger("werkzeug")
    server_log.addFilter(counter)
    try:
        yield counter.errors
    finally:
        server_log.removeFilter(counter)


def timed_uploader(schedule: list[float]) -> type:
    """The sandbox's uploader, noting how long its schedule took, to tell the achieved rate."""
    from data_aggregator.sandbox.uploader import SyntheticUploader, UploadedFile

    class TimedUploader(SyntheticUploader):
        def run(
            self,
            stop: threading.Event | None = None,
            on_upload: Callable[[UploadedFile], None] | None = None,
        ) -> list[UploadedFile]:
            started = time.monotonic()
            try:
                return super().run(stop, on_upload)
            finally:
                schedule.append(time.monotonic() - started)

    return TimedUploader


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat(5)


def call_costs(backend: Backend, *, calls: int) -> Table:
    """CPU milliseconds each server spends per call (its own CPU time over ``calls`` sequential calls)."""
    clients = backend.clients()
    servers = backend.server_pids()
    name = f"bench-probe-{uuid.uuid4().hex[:8]}"
    clients.s3.create_bucket(Bucket=name)
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue_url = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
    body = b"x" * 100_000
    probes: list[tuple[str, Callable[[int], object]]] = [
        ("S3 PutObject (100 KB)", lambda i: clients.s3.put_object(Bucket=name, Key=f"k{i}", Body=body)),
        ("S3 GetObject (100 KB, read fully)", lambda i: clients.s3.get_object(Bucket=name, Key=f"k{i}")["Body"].read()),
        (
            "DynamoDB PutItem",
            lambda i: clients.dynamodb.put_item(TableName=name, Item={"ObjectID": {"S": f"o{i}"}}),
        ),
        ("SQS SendMessage", lambda i: clients.sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{i}")),
    ]
    rows: list[tuple[str | int | float, ...]] = []
    for label, call in probes:
        spent_before = {server: cpu_seconds(pid) for server, pid in servers.items()}
        started = time.perf_counter()
        for i in range(calls):
            call(i)
        elapsed = time.perf_counter() - started
        spent = {server: cpu_seconds(pid) - spent_before[server] for server, pid in servers.items()}
        busiest = max(spent, key=lambda server: spent[server]) if spent else "-"
        rows.append(
            (
                label,
                calls,
                elapsed / calls * 1000,
                busiest,
                spent[busiest] / calls * 1000 if spent else "-",
                calls / elapsed,
            )
        )
    return Table(
        title=f"What one call costs the {backend.backend} backend (sequential calls from one client)",
        headers=("call", "calls", "ms per call (wall)", "server", "server CPU ms per call", "calls/s"),
        rows=tuple(rows),
        notes=(
            "server CPU: the CPU time the server process spent over the calls, divided by their number "
            "(clock ticks of 10 ms, so small figures are coarse)",
        ),
    )
