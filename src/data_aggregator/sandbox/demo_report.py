"""The demo's verdict: where every uploaded file ended, judged in three separate parts.

* **correctness** - nothing lost, doubled, altered or invented, every bundle verified, and no healthy
  file in the dead-letter queue. This is what the product promises on any machine.
* **delivery** - every file reached the consumer before the run stopped waiting (it waits as long as
  anything moves). A file still queued or in progress when it stopped is late, not lost.
* **latency** - SPEC N1's percentiles. They measure the machine as much as the pipeline, so they are
  reported and never fail the run on their own.

A file that did not arrive is placed where its trail ends (``checks.Whereabouts``): dead-lettered
(recoverable, and the report names the command), still queued or in progress (late), or lost (no
trace anywhere). "Lost" is used for that last case only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from data_aggregator.sandbox.checks import REDRIVE_COMMAND, Reconciliation, Whereabouts, percentile

if TYPE_CHECKING:
    from data_aggregator.sandbox.demo import DemoOptions

LATENCY_TARGETS = ((0.95, 120.0), (0.999, 180.0))  # SPEC N1: landing -> Distribution
SHOWN = 3


def _examples(items: Sequence[str]) -> str:
    return f"e.g. {list(items[:SHOWN])}" if items else ""


@dataclass(slots=True)
class DemoReport:
    """The verdict of one demo run."""

    options: DemoOptions
    reconciliation: Reconciliation
    whereabouts: Whereabouts = field(default_factory=Whereabouts)
    bundles: int = 0
    bytes_bundled: int = 0
    bytes_uploaded: int = 0
    large_files: int = 0
    odd_keys: int = 0
    archive_problems: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    upload_failures: list[str] = field(default_factory=list)
    distribution_left: int = 0
    dlq_depth: int = 0
    dlq_unexpected: list[str] = field(default_factory=list)
    dlq_url: str = ""
    invocations: int = 0
    invocation_seconds: list[float] = field(default_factory=list)
    failed_messages: int = 0
    deferred_messages: int = 0
    invocation_errors: int = 0
    poison_sent: int = 0
    duplicates_sent: int = 0
    drained: bool = True
    stop_reason: str = ""
    upload_seconds: float = 0.0
    drain_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    workdir: Path | None = None

    @property
    def problems(self) -> list[str]:
        """Every failed check that fails the run, in words (latency targets are reported, not here)."""
        return self.correctness_problems + self.delivery_problems

    @property
    def correctness_problems(self) -> list[str]:
        """Anything lost, doubled, altered or invented, a bundle that failed a check, or a healthy
        message dead-lettered: a defect on any machine, however slow."""
        r, where = self.reconciliation, self.whereabouts
        found: list[str] = []
        if where.lost:
            found.append(f"{len(where.lost)} file(s) lost (no trace anywhere), {_examples(where.lost)}")
        if r.duplicated:
            found.append(f"{len(r.duplicated)} file(s) delivered more than once, {_examples(r.duplicated)}")
        if r.altered:
            found.append(f"{len(r.altered)} file(s) delivered with different bytes, {_examples(r.altered)}")
        if r.unexpected:
            found.append(f"{len(r.unexpected)} unexpected file(s) in bundles, {_examples(r.unexpected)}")
        if self.upload_failures:
            found.append(f"{len(self.upload_failures)} upload(s) to Landing failed: {self.upload_failures[:2]}")
        found.extend(f"rejected by the consumer: {item}" for item in self.rejected[:5])
        found.extend(self.archive_problems[:5])
        if self.distribution_left:
            found.append(f"{self.distribution_left} bundle(s) left unconsumed in Distribution")
        if where.dead_lettered:
            found.append(
                f"{len(where.dead_lettered)} healthy file(s) dead-lettered, {_examples(where.dead_lettered)}; "
                f"recoverable: {self.redrive_command}"
            )
        elif self.dlq_unexpected:
            found.append(
                f"the DLQ holds {len(self.dlq_unexpected)} healthy message(s) besides the injected poison "
                f"(their files arrived by another message): {self.dlq_unexpected[0]:.120}"
            )
        return found

    @property
    def delivery_problems(self) -> list[str]:
        """Files (or poison) still on their way when the run stopped waiting: late, not lost."""
        where = self.whereabouts
        found: list[str] = []
        if where.late:
            found.append(
                f"{len(where.late)} file(s) not yet delivered ({where.late_by_kind()}), "
                f"{_examples(where.late)}: {self.stop_reason or 'the run stopped waiting'}"
            )
        poison_in_dlq = self.dlq_depth - len(self.dlq_unexpected)
        if poison_in_dlq < self.poison_sent:
            found.append(
                f"only {max(0, poison_in_dlq)} of the {self.poison_sent} poison message(s) had reached the DLQ: "
                f"{self.stop_reason or 'the run stopped waiting'}"
            )
        if not self.drained and not found:
            found.append(f"the event queue still held messages: {self.stop_reason or 'the run stopped waiting'}")
        return found

    @property
    def latency_problems(self) -> list[str]:
        """SPEC N1 percentiles the run missed (reported; they do not fail the run)."""
        found: list[str] = []
        for fraction, target in LATENCY_TARGETS:
            measured = percentile(self.reconciliation.latencies, fraction)
            if measured > target:
                found.append(f"p{fraction * 100:g} is {measured:.1f} s, above the {target:g} s target")
        return found

    @property
    def ok(self) -> bool:
        """Correct and fully delivered (latency targets are reported, not judged)."""
        return not self.problems

    @property
    def redrive_command(self) -> str:
        return REDRIVE_COMMAND.format(dlq=self.dlq_url or "<DLQ URL>")

    @property
    def upload_rate(self) -> float:
        """Files per second the uploader reached (what it asked for is ``options.rate``)."""
        uploaded = self.reconciliation.uploaded
        return uploaded / self.upload_seconds if self.upload_seconds > 0 else float(uploaded)

    def render(self) -> str:
        """The closing report."""
        r, o, where = self.reconciliation, self.options, self.whereabouts
        lat = r.latencies
        delivered_once = r.bundled - len(r.duplicated)
        lines = [
            "data-aggregator demo report",
            "=" * 60,
            f"settings        rate {o.rate:g}/s asked, {self.upload_rate:.1f}/s reached; batch size {o.batch_size}, "
            f"window {o.window_seconds:g} s, timeout {o.function_timeout_seconds:g} s, visibility "
            f"{o.visibility_timeout} s, maxReceiveCount {o.max_receive_count}",
            f"elapsed         {self.elapsed_seconds:.1f} s (uploads {self.upload_seconds:.1f} s, "
            f"then {self.drain_seconds:.1f} s to drain)",
            f"files uploaded  {r.uploaded} ({self.bytes_uploaded:,} bytes; {self.large_files} large, "
            f"{self.odd_keys} with awkward keys)",
            f"  delivered     {r.bundled} ({delivered_once} exactly once, {len(r.duplicated)} more than once, "
            f"{len(r.altered)} altered; {self.duplicates_sent} duplicate notifications injected)",
            f"  dead-lettered {len(where.dead_lettered)}"
            + (f" (recoverable: {self.redrive_command})" if where.dead_lettered else ""),
            f"  still queued  {len(where.late)}"
            + (f" ({self.stop_reason})" if where.late else " (the run waited while anything moved)"),
            f"  lost          {len(where.lost)}",
            f"bundles         {self.bundles} written and consumed, {self.bytes_bundled:,} bytes",
            f"invocations     {self.invocations} ({self.failed_messages} message failures reported, "
            f"{self.deferred_messages} messages deferred for lack of time, {self.invocation_errors} failed "
            f"invocations; duration p50 {percentile(self.invocation_seconds, 0.5):.1f} s, "
            f"max {max(self.invocation_seconds, default=0.0):.1f} s)",
            f"DLQ depth       {self.dlq_depth} (expected {self.poison_sent}: the injected poison messages)",
            "latency         landing -> Distribution: "
            f"p50 {percentile(lat, 0.50):.1f} s, p95 {percentile(lat, 0.95):.1f} s, "
            f"p99 {percentile(lat, 0.99):.1f} s, max {max(lat, default=0.0):.1f} s "
            "(targets: p95 <= 120 s, p99.9 <= 180 s)",
            "verification    "
            + (
                "every bundle: SHA-256 = content-sha256, members = manifest, same digest in Archive"
                if not (self.rejected or self.archive_problems)
                else f"{len(self.rejected)} bundle(s) rejected, {len(self.archive_problems)} archive problem(s)"
            ),
        ]
        if self.workdir is not None:
            lines.append(f"work directory  {self.workdir} (handler log: handler.log)")
        lines.append("-" * 60)
        lines.extend(self._verdict_lines())
        return "\n".join(lines)

    def _verdict_lines(self) -> list[str]:
        lines = [
            _part(
                "correctness", self.correctness_problems, "nothing lost, doubled or altered; only the poison in the DLQ"
            ),
            _part("delivery", self.delivery_problems, "every file delivered; the pipeline drained"),
        ]
        latency = self.latency_problems
        if latency:
            lines.append(
                f"latency         MISSED on this machine (reported, not failed): {'; '.join(latency)}; "
                f"uploads reached {self.upload_rate:.1f} of {self.options.rate:g} files/s"
            )
        else:
            lines.append("latency         PASS: within SPEC N1's targets")
        if self.ok:
            lines.append("RESULT: PASS - zero loss, zero duplicates, every file delivered and verified")
        else:
            failed = [
                name
                for name, part in (("correctness", self.correctness_problems), ("delivery", self.delivery_problems))
                if part
            ]
            lines.append(f"RESULT: FAIL ({', '.join(failed)})")
            lines.extend(f"  - {problem}" for problem in self.problems)
        return lines


def _part(name: str, problems: Sequence[str], passed: str) -> str:
    label = f"{name:<15} "
    return label + ("PASS: " + passed if not problems else f"FAIL: {len(problems)} problem(s), listed below")
