"""The invariants every scenario must keep, judged from evidence collected after the run.

Pure functions over plain data, so that each rule is tested on its own (``tests/unit/test_e2e_verdict.py``)
and the same rules judge the local and the AWS target:

* every uploaded object (not deleted on purpose) is in exactly one verified Distribution bundle with
  its own bytes, and that bundle is in Archive with the same bytes;
* no file is in two Distribution bundles, whatever was killed or lost on the way (exactly once);
  a second copy fails the run, with a diagnosis naming kills or lost write answers that touched it;
* no bundle is empty or corrupt, in Distribution or left behind in Archive;
* the dead-letter queue holds exactly the poison messages, and nothing else is left in the queue;
* the scenario's own expectations (bundle counts, limits, compression, memory, handler metrics).

A file that did not arrive is judged by where its trail ends (``checks.Whereabouts``): lost only when
there is no trace of it anywhere; dead-lettered (a healthy message in the DLQ: a defect, but a redrive
away); or late, still queued or in progress when the run stopped waiting. Late problems are kept apart
(``late_problems``) so a slow machine's run reads LATE, never "lost".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from data_aggregator.config import Settings
from data_aggregator.ops.consume import ConsumedBundle
from data_aggregator.sandbox.checks import REDRIVE_COMMAND, Reconciliation, Whereabouts, percentile
from e2e_tests.config import ScenarioConfig
from e2e_tests.target import TargetFindings

MAX_LISTED = 3


@dataclass(slots=True)
class Evidence:
    """What the run left behind, read back from the buckets and queues."""

    reconciliation: Reconciliation
    consumed: list[ConsumedBundle]
    whereabouts: Whereabouts = field(default_factory=Whereabouts)
    """Where the undelivered files are (``reconciliation.missing``, sorted by where their trail ends)."""
    stop_reason: str = ""
    """Why the run stopped waiting, when it did not drain."""
    dlq_url: str = ""
    rejected: list[str] = field(default_factory=list)
    upload_failures: list[str] = field(default_factory=list)
    deleted: int = 0
    archive_problems: list[str] = field(default_factory=list)
    archive_only: list[str] = field(default_factory=list)
    archive_only_problems: list[str] = field(default_factory=list)
    distribution_left: list[str] = field(default_factory=list)
    queue_left: tuple[int, int] = (0, 0)
    dead_letters: list[str] = field(default_factory=list)
    expected_dead_letters: list[str] = field(default_factory=list)
    new_bundles_after_redelivery: int = 0
    drained: bool = True
    findings: TargetFindings = field(default_factory=TargetFindings)
    lost_details: list[str] = field(default_factory=list)
    """For lost files (no trace anywhere): what the idempotency table and the handler's input say."""


@dataclass(slots=True)
class Figures:
    """The numbers a scenario reports, whatever its verdict."""

    files_uploaded: int = 0
    files_expected: int = 0
    files_delivered: int = 0
    bundles: int = 0
    duplicates: int = 0
    archive_only: int = 0
    dead_letters: int = 0
    dead_letters_expected: int = 0
    input_bytes: int = 0
    bundle_bytes: int = 0
    latency_p50: float = 0.0
    latency_p95: float = 0.0
    latency_max: float = 0.0

    @property
    def compression_ratio(self) -> float:
        """Input bytes per bundle byte (1.0 when nothing was bundled)."""
        return self.input_bytes / self.bundle_bytes if self.bundle_bytes else 1.0


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(repr(item) for item in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def duplicates(reconciliation: Reconciliation) -> tuple[int, list[str]]:
    """(extra copies, files in more than one Distribution bundle): every one of them is a defect."""
    extra = 0
    doubled: list[str] = []
    for label, bundle_keys in sorted(reconciliation.placements.items()):
        if len(bundle_keys) > 1:
            extra += len(bundle_keys) - 1
            doubled.append(label)
    return extra, doubled


def _duplicate_diagnosis(reconciliation: Reconciliation, doubled: list[str], findings: TargetFindings) -> str:
    """Name what touched the doubled files' bundles: a kill, or a write whose answers were all lost."""
    keys = {key for label in doubled for key in reconciliation.placements[label]}
    killed = len(keys & set(findings.killed_bundles))
    unconfirmed = len(keys & set(findings.unconfirmed_writes))
    return (
        f" ({killed} of their bundles written by killed invocations, {unconfirmed} by writes whose answers were lost)"
    )


def dead_letter_problems(found: Sequence[str], expected: Sequence[str]) -> list[str]:
    """The dead-letter queue must hold exactly the expected bodies, each exactly once."""
    missing = list((Counter(expected) - Counter(found)).elements())
    extra = list((Counter(found) - Counter(expected)).elements())
    problems = []
    if missing:
        problems.append(f"{len(missing)} poison message(s) had not reached the DLQ: {_listed(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected message(s) in the DLQ: {_listed([b[:120] for b in extra])}")
    return problems


def limit_problems(consumed: Sequence[ConsumedBundle], settings: Settings) -> list[str]:
    """Every bundle within the configured files-per-bundle and input-bytes limits (one oversized file alone)."""
    problems = []
    for bundle in consumed:
        files = len(bundle.files)
        size = sum(entry.size for entry in bundle.files)
        if files > settings.max_files_per_bundle:
            problems.append(f"bundle {bundle.key} holds {files} files, above MAX_FILES_PER_BUNDLE")
        if size > settings.max_bundle_input_bytes and files > 1:
            problems.append(f"bundle {bundle.key} holds {size} input bytes in {files} files, above the limit")
    return problems


def archive_only_allowed(config: ScenarioConfig) -> bool:
    """A bundle in Archive alone is an orphan: killed and failed Distribution writes are completed by the
    next owner of the claims. Only a scenario whose leases run out mid-upload may leave one (declared)."""
    return config.expect.archive_only_allowed


def figures_of(config: ScenarioConfig, evidence: Evidence, extra_copies: int) -> Figures:
    """The reported numbers."""
    r = evidence.reconciliation
    return Figures(
        files_uploaded=r.uploaded + evidence.deleted,
        files_expected=r.uploaded,
        files_delivered=r.bundled,
        bundles=len(evidence.consumed),
        duplicates=extra_copies,
        archive_only=len(evidence.archive_only),
        dead_letters=len(evidence.dead_letters),
        dead_letters_expected=len(evidence.expected_dead_letters),
        input_bytes=sum(entry.size for bundle in evidence.consumed for entry in bundle.files),
        bundle_bytes=sum(bundle.size for bundle in evidence.consumed),
        latency_p50=percentile(r.latencies, 0.5),
        latency_p95=percentile(r.latencies, 0.95),
        latency_max=max(r.latencies, default=0.0),
    )


def judge(config: ScenarioConfig, evidence: Evidence, settings: Settings | None) -> tuple[list[str], Figures]:
    """Every violated invariant or expectation, in words, and the figures."""
    findings = evidence.findings
    extra, doubled = duplicates(evidence.reconciliation)
    figures = figures_of(config, evidence, extra)
    problems = delivery_problems(evidence, doubled)
    problems += storage_problems(config, evidence)
    dead_letters = dead_letter_problems(evidence.dead_letters, evidence.expected_dead_letters)
    if not evidence.drained:  # poison still on its way is late (late_problems), not wrong
        dead_letters = [p for p in dead_letters if "had not reached the DLQ" not in p]
    problems += dead_letters
    if settings is not None:
        problems += limit_problems(evidence.consumed, settings)[:MAX_LISTED]
    problems += expectation_problems(config, figures, findings)
    return problems, figures


def late_problems(evidence: Evidence) -> list[str]:
    """Files still on their way when the run stopped waiting: late, not lost (a slow run, not a lossy one)."""
    if evidence.drained:
        return []
    where = evidence.whereabouts
    reason = evidence.stop_reason or "the run stopped waiting"
    problems = []
    if where.late:
        problems.append(
            f"{len(where.late)} file(s) not yet delivered ({where.late_by_kind()}): {_listed(where.late)}; {reason}"
        )
    missing_poison = Counter(evidence.expected_dead_letters) - Counter(evidence.dead_letters)
    if missing_poison:
        problems.append(f"{sum(missing_poison.values())} poison message(s) had not reached the DLQ yet; {reason}")
    visible, waiting = evidence.queue_left
    if visible or waiting:
        problems.append(f"the queue still holds {visible} visible and {waiting} waiting message(s); {reason}")
    if not problems:
        problems.append(f"the pipeline did not settle; {reason}")
    return problems


def delivery_problems(evidence: Evidence, doubled: list[str]) -> list[str]:
    """Files lost, dead-lettered, doubled, changed or invented; uploads that failed; a run that never settled."""
    r, where = evidence.reconciliation, evidence.whereabouts
    problems = late_problems(evidence)
    if evidence.upload_failures:
        problems.append(f"{len(evidence.upload_failures)} upload(s) failed: {_listed(evidence.upload_failures)}")
    # A missing file nobody placed anywhere has no trace: it counts as lost, never as nothing.
    placed = {*where.dead_lettered, *where.late}
    lost = sorted({*where.lost, *(label for label in r.missing if label not in placed)})
    if lost:
        problems.append(f"{len(lost)} file(s) lost (no trace anywhere): {_listed(lost)}")
        problems.extend(f"  lost {detail}" for detail in evidence.lost_details[:MAX_LISTED])
    if where.dead_lettered:
        redrive = REDRIVE_COMMAND.format(dlq=evidence.dlq_url or "<DLQ URL>")
        problems.append(
            f"{len(where.dead_lettered)} healthy file(s) dead-lettered: {_listed(where.dead_lettered)} "
            f"(recoverable: {redrive})"
        )
    if doubled:
        problems.append(
            f"{len(doubled)} file(s) in more than one Distribution bundle: {_listed(doubled)}"
            + _duplicate_diagnosis(r, doubled, evidence.findings)
        )
    if r.altered:
        problems.append(f"{len(r.altered)} file(s) delivered with other bytes: {_listed(r.altered)}")
    if r.unexpected:
        problems.append(f"{len(r.unexpected)} unexpected file(s) in bundles: {_listed(r.unexpected)}")
    if evidence.new_bundles_after_redelivery:
        problems.append(
            f"delivering every notification again produced {evidence.new_bundles_after_redelivery} new bundle(s)"
        )
    return problems


def storage_problems(config: ScenarioConfig, evidence: Evidence) -> list[str]:
    """Bad, empty or stray bundles; an Archive copy that differs; messages left in the queue."""
    problems = [f"bundle rejected by the consumer: {item}" for item in evidence.rejected[:MAX_LISTED]]
    empty = [bundle.key for bundle in evidence.consumed if not bundle.files]
    if empty:
        problems.append(f"{len(empty)} empty bundle(s) published: {_listed(empty)}")
    problems.extend(evidence.archive_problems[:MAX_LISTED])
    problems.extend(evidence.archive_only_problems[:MAX_LISTED])
    if evidence.archive_only and not archive_only_allowed(config):
        problems.append(
            f"{len(evidence.archive_only)} bundle(s) in Archive never reached Distribution (an orphan): "
            f"{_listed(evidence.archive_only)}"
        )
    if evidence.distribution_left:
        problems.append(f"{len(evidence.distribution_left)} bundle(s) left unconsumed in Distribution")
    return problems


def expectation_problems(config: ScenarioConfig, figures: Figures, findings: TargetFindings) -> list[str]:
    """The scenario's own expectations."""
    expect = config.expect
    problems = []
    if expect.bundles_min is not None and figures.bundles < expect.bundles_min:
        problems.append(f"{figures.bundles} bundle(s), expected at least {expect.bundles_min}")
    if expect.bundles_max is not None and figures.bundles > expect.bundles_max:
        problems.append(f"{figures.bundles} bundle(s), expected at most {expect.bundles_max}")
    if expect.compression_ratio_min is not None and figures.compression_ratio < expect.compression_ratio_min:
        problems.append(
            f"compression ratio {figures.compression_ratio:.2f}, expected at least {expect.compression_ratio_min:g}"
        )
    memory, bound = findings.memory, expect.peak_rss_growth_mib_max
    if bound is not None and memory is not None and memory.growth_mib > bound:
        problems.append(f"peak RSS grew by {memory.growth_mib:.0f} MiB, above the {bound:g} MiB bound")
    if expect.metrics and findings.metrics is not None:
        for name, wanted in sorted(expect.metrics.items()):
            got = findings.metrics.get(name, 0.0)
            if got != wanted:
                problems.append(f"handler metric {name} = {got:g}, expected {wanted:g}")
    if expect.metrics_at_least and findings.metrics is not None:
        for name, floor in sorted(expect.metrics_at_least.items()):
            got = findings.metrics.get(name, 0.0)
            if got < floor:
                problems.append(f"handler metric {name} = {got:g}, expected at least {floor:g}")
    return problems
