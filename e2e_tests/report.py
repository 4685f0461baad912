"""The closing report: one table row per scenario, then the details that explain each verdict."""

from __future__ import annotations

from collections.abc import Sequence

from e2e_tests.faults import InjectionCount
from e2e_tests.runner import ScenarioResult

_COLUMNS = (
    ("scenario", "<", 22),
    ("result", "<", 6),
    ("files", ">", 11),
    ("bundles", ">", 7),
    ("dup", ">", 4),
    ("DLQ", ">", 5),
    ("ratio", ">", 6),
    ("p95 lat", ">", 7),
    ("peak RSS", ">", 12),
    ("faults", ">", 6),
    ("time", ">", 7),
)


def _cells(result: ScenarioResult) -> list[str]:
    f = result.figures
    memory = result.findings.memory
    rss = f"+{memory.growth_mib:.0f} MiB" if memory is not None else "-"
    injected = sum(count.injected for count in result.findings.faults)
    return [
        result.name,
        result.outcome,
        f"{f.files_delivered}/{f.files_expected}",
        str(f.bundles),
        str(f.duplicates),
        f"{f.dead_letters}/{f.dead_letters_expected}",
        f"{f.compression_ratio:.2f}",
        f"{f.latency_p95:.1f}s",
        rss,
        str(injected) if result.findings.faults else "-",
        f"{result.elapsed_seconds:.0f}s",
    ]


def _row(cells: Sequence[str]) -> str:
    return "  ".join(f"{cell:{align}{width}}" for cell, (_, align, width) in zip(cells, _COLUMNS, strict=True))


def render(results: Sequence[ScenarioResult]) -> str:
    """The whole report: table, legend, then details per scenario."""
    header = _row([name for name, _, _ in _COLUMNS])
    lines = [header, "-" * len(header)]
    lines += [_row(_cells(result)) for result in results]
    lines.append("-" * len(header))
    lines.append(
        "result: PASS, LATE (nothing lost, doubled or altered, but not everything had arrived when the run stopped "
        "waiting) or FAIL; files: delivered exactly once / expected (uploads minus deliberate deletions); dup: extra "
        "copies of a file "
        "in Distribution (any is a failure); DLQ: found / poison sent; ratio: input / bundle "
        "bytes; peak RSS: this process above its start (emulator apart)"
    )
    for result in results:
        lines.append("")
        lines.extend(details(result))
    passed = sum(result.passed for result in results)
    late = sum(result.outcome == "LATE" for result in results)
    lines.append("")
    lines.append(
        f"RESULT: {'PASS' if passed == len(results) else 'FAIL'} - {passed} of {len(results)} scenario(s) passed"
        + (f"; {late} late (nothing lost, doubled or altered; not everything had arrived)" if late else "")
    )
    return "\n".join(lines)


def by_kind(counts: Sequence[InjectionCount]) -> str:
    """Injections summed per kind of fault, and kills per point."""
    totals: dict[str, int] = {}
    for count in counts:
        if count.kind == "kill":
            label = count.what
        else:
            label = count.kind.replace("_", " ") + (" after taking effect" if count.applied else "")
        totals[label] = totals.get(label, 0) + count.injected
    return ", ".join(f"{label} {total}" for label, total in totals.items())


def details(result: ScenarioResult) -> list[str]:
    """What one scenario measured, what it injected and, if it failed, why."""
    f = result.figures
    findings = result.findings
    lines = [f"{result.name} ({result.target}): {result.outcome}"]
    lines.append(
        f"  files      {f.files_uploaded} uploaded, {f.files_expected} expected, {f.files_delivered} delivered; "
        f"{f.bundles} bundle(s), {f.input_bytes:,} bytes in, {f.bundle_bytes:,} bytes of bundles "
        f"(ratio {f.compression_ratio:.2f})"
    )
    if f.duplicates or findings.killed_bundles or findings.unconfirmed_writes:
        lines.append(
            f"  duplicates {f.duplicates} extra copies; {len(findings.killed_bundles)} kill(s) after a Distribution "
            f"write and {len(findings.unconfirmed_writes)} Distribution write(s) whose every answer was lost, "
            "all completed by the next owner"
        )
    if f.archive_only:
        lines.append(f"  archive    {f.archive_only} bundle(s) only in Archive (orphans of an expired lease)")
    lines.append(
        f"  latency    landing -> consumer p50 {f.latency_p50:.1f} s, p95 {f.latency_p95:.1f} s, "
        f"max {f.latency_max:.1f} s"
    )
    invocations = findings.invocations
    if invocations is not None:
        lines.append(
            f"  function   {invocations.invocations} invocation(s), {invocations.failed_messages} message failure(s) "
            f"reported, {invocations.errors} invocation(s) failed or killed"
        )
    memory = findings.memory
    if memory is not None:
        emulator = f"{memory.emulator_peak_mib:.0f} MiB" if memory.emulator_peak_mib is not None else "unknown"
        how = "kernel high-water mark" if memory.exact else "sampled"
        lines.append(
            f"  memory     this process {memory.runner_start_mib:.0f} -> {memory.runner_peak_mib:.0f} MiB peak "
            f"(+{memory.growth_mib:.0f} MiB, {how}); emulator process peak {emulator}"
        )
    if findings.faults:
        lines.append(f"  by kind    {by_kind(findings.faults)}; {'all survived' if result.passed else 'NOT survived'}")
        counts = "; ".join(
            f"{c.what}: {c.injected} of {c.matched} {'times reached' if c.kind == 'kill' else 'calls'}"
            for c in findings.faults
        )
        lines.append(f"  injected   {counts}")
    if findings.metrics:
        shown = {k: v for k, v in sorted(findings.metrics.items()) if v and not k.endswith(("Bytes", "Seconds"))}
        lines.append("  metrics    " + ", ".join(f"{k} {v:g}" for k, v in shown.items()))
    lines.extend(f"  note       {note}" for note in result.notes)
    lines.extend(f"  {'LATE' if problem in result.late else 'PROBLEM':<10} {problem}" for problem in result.problems)
    if result.workdir is not None and not result.passed:
        lines.append(f"  workdir    {result.workdir} (handler.log, emulator.log, extracted/)")
    return lines
