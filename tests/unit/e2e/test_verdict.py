"""The invariants, judged from synthetic evidence: each rule catches what it must and excuses only kills."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_aggregator.config import Settings
from data_aggregator.models import ManifestEntry
from data_aggregator.ops.consume import ConsumedBundle
from data_aggregator.sandbox.checks import Whereabouts, reconcile
from data_aggregator.sandbox.uploader import UploadedFile
from e2e_tests.config import ScenarioConfig
from e2e_tests.target import MemoryFigures, TargetFindings
from e2e_tests.verdict import (
    Evidence,
    archive_only_allowed,
    dead_letter_problems,
    duplicates,
    judge,
    late_problems,
    limit_problems,
)

LANDING = "landing"
SHA = {name: (name * 64)[:64] for name in "abcdef"}


def config(**changes: Any) -> ScenarioConfig:
    base: dict[str, Any] = {"name": "s", "description": "d", "upload": {"files": [{"count": 1, "size": 1}]}}
    return ScenarioConfig.model_validate({**base, **changes})


def upload(key: str, sha: str = "a", version: str | None = None) -> UploadedFile:
    return UploadedFile(key=key, size=1, sha256=SHA[sha], etag="e", version_id=version, uploaded_at=100.0)


def bundle(key: str, *files: tuple[str, str] | tuple[str, str, str | None]) -> ConsumedBundle:
    entries = tuple(
        ManifestEntry(
            member=f[0],
            bucket=LANDING,
            key=f[0],
            version_id=f[2] if len(f) > 2 else None,
            etag="e",
            size=1,
            sha256=SHA[f[1]],
            event_time=None,
        )
        for f in files
    )
    return ConsumedBundle(
        key=key, bundle_id=key, sha256="0" * 64, size=10, directory=Path(), files=entries, first_seen=101.0, forwarded=0
    )


def evidence(uploads: list[UploadedFile], bundles: list[ConsumedBundle], **extra: Any) -> Evidence:
    return Evidence(reconciliation=reconcile(uploads, bundles, LANDING), consumed=bundles, **extra)


def test_a_clean_run_passes_and_reports_its_figures() -> None:
    uploads = [upload("x"), upload("y")]
    problems, figures = judge(config(), evidence(uploads, [bundle("b1", ("x", "a"), ("y", "a"))]), None)
    assert problems == []
    assert (figures.files_delivered, figures.bundles, figures.input_bytes, figures.bundle_bytes) == (2, 1, 2, 10)
    assert figures.latency_max == 1.0


def test_loss_alteration_invention_and_emptiness_are_each_reported() -> None:
    uploads = [upload("lost"), upload("changed"), upload("fine")]
    bundles = [bundle("b1", ("changed", "b"), ("fine", "a"), ("invented", "a")), bundle("b2")]
    problems, _ = judge(config(), evidence(uploads, bundles), None)
    text = "\n".join(problems)
    assert "2 file(s) lost (no trace anywhere): 'changed', 'lost'" in text
    assert "1 file(s) delivered with other bytes: 'changed'" in text
    assert "1 unexpected file(s) in bundles: 'landing/invented'" in text
    assert "1 empty bundle(s) published: 'b2'" in text


def test_versions_of_one_key_are_told_apart() -> None:
    uploads = [upload("k", "a", "v1"), upload("k", "b", "v2")]
    fine = evidence(uploads, [bundle("b1", ("k", "a", "v1"), ("k", "b", "v2"))])
    assert judge(config(), fine, None)[0] == []
    only_v2 = evidence(uploads, [bundle("b1", ("k", "b", "v2"))])
    assert any("lost (no trace anywhere): 'k (version v1)'" in p for p in judge(config(), only_v2, None)[0])


def test_no_duplicate_is_excused_whatever_was_killed() -> None:
    uploads = [upload("x"), upload("y")]
    bundles = [bundle("killed", ("x", "a")), bundle("retry", ("x", "a"), ("y", "a")), bundle("again", ("y", "a"))]
    r = reconcile(uploads, bundles, LANDING)
    assert duplicates(r) == (2, ["x", "y"])

    found = evidence(uploads, bundles, findings=TargetFindings(killed_bundles=["killed"], unconfirmed_writes=["again"]))
    problems, figures = judge(config(), found, None)
    assert figures.duplicates == 2
    assert problems == [
        "2 file(s) in more than one Distribution bundle: 'x', 'y' "
        "(1 of their bundles written by killed invocations, 1 by writes whose answers were lost)"
    ]
    assert duplicates(reconcile(uploads, [bundles[1]], LANDING)) == (0, [])


def test_the_dead_letter_queue_must_hold_exactly_the_poison() -> None:
    assert dead_letter_problems(["p1", "p2"], ["p2", "p1"]) == []
    assert dead_letter_problems(["p1"], ["p1", "p2"]) == ["1 poison message(s) had not reached the DLQ: 'p2'"]
    assert dead_letter_problems(["p1", "p1", "real event"], ["p1"]) == [
        "2 unexpected message(s) in the DLQ: 'p1', 'real event'"
    ]


def test_leftovers_in_the_queue_and_distribution_and_no_drain_fail_the_run() -> None:
    found = evidence(
        [],
        [],
        queue_left=(2, 1),
        distribution_left=["k"],
        drained=False,
        upload_failures=["a: boom"],
        stop_reason="the run stopped waiting: nothing moved for 60 s",
    )
    problems, _ = judge(config(), found, None)
    assert problems == [
        "the queue still holds 2 visible and 1 waiting message(s); the run stopped waiting: nothing moved for 60 s",
        "1 upload(s) failed: 'a: boom'",
        "1 bundle(s) left unconsumed in Distribution",
    ]
    assert late_problems(found) == problems[:1]


def test_an_undelivered_file_is_lost_only_without_a_trace_anywhere() -> None:
    uploads = [upload(name) for name in ("delivered", "in-dlq", "queued", "claimed", "unread", "gone")]
    bundles = [bundle("b1", ("delivered", "a"))]
    r = reconcile(uploads, bundles, LANDING)
    where = Whereabouts(
        dead_lettered=["in-dlq"], queued=["queued"], in_progress=["claimed"], unread=["unread"], lost=["gone"]
    )
    found = Evidence(
        reconciliation=r,
        consumed=bundles,
        whereabouts=where,
        drained=False,
        stop_reason="the run stopped waiting: nothing moved for 60 s",
        dlq_url="https://sqs/dlq",
    )
    problems, _ = judge(config(), found, None)
    assert problems == [
        "3 file(s) not yet delivered (1 still queued, 1 claimed and in progress, 1 possibly in the queue's unread "
        "messages): 'queued', 'claimed', 'unread'; the run stopped waiting: nothing moved for 60 s",
        "1 file(s) lost (no trace anywhere): 'gone'",
        "1 healthy file(s) dead-lettered: 'in-dlq' (recoverable: data-aggregator dlq redrive --dlq https://sqs/dlq)",
    ]
    assert late_problems(found) == problems[:1]


def test_a_missing_file_nobody_placed_counts_as_lost() -> None:
    uploads = [upload("x"), upload("y")]
    found = evidence(uploads, [bundle("b1", ("x", "a"))])  # no whereabouts given at all
    problems, _ = judge(config(), found, None)
    assert problems == ["1 file(s) lost (no trace anywhere): 'y'"]


def test_bundles_only_in_archive_are_orphans_unless_the_scenario_declares_expiring_leases() -> None:
    assert not archive_only_allowed(config())
    # Failed and killed Distribution writes are completed by the next owner: no orphan is excused by them.
    assert not archive_only_allowed(config(faults=[{"call": "s3:PutObject", "kind": "throttle", "at_calls": [1]}]))
    assert not archive_only_allowed(config(kills=[{"point": "after_archive_write", "at_calls": [1]}]))
    assert archive_only_allowed(config(expect={"archive_only_allowed": True}))
    found = evidence([], [], archive_only=["orphan"])
    assert judge(config(), found, None)[0] == [
        "1 bundle(s) in Archive never reached Distribution (an orphan): 'orphan'"
    ]


def test_bundle_limits_allow_one_oversized_file_alone() -> None:
    settings = Settings.from_env(
        {
            "ARCHIVE_BUCKET_NAME": "aaa",
            "DISTRIBUTION_BUCKET_NAME": "ddd",
            "IDEMPOTENCY_TABLE_NAME": "ttt",
            "MAX_FILES_PER_BUNDLE": "2",
            "MAX_BUNDLE_INPUT_BYTES": "1",
        }
    )
    alone = bundle("alone", ("x", "a"))
    crowded = bundle("crowded", ("x", "a"), ("y", "a"), ("z", "a"))
    assert limit_problems([alone], settings) == []
    assert limit_problems([crowded], settings) == [
        "bundle crowded holds 3 files, above MAX_FILES_PER_BUNDLE",
        "bundle crowded holds 3 input bytes in 3 files, above the limit",
    ]


def test_expectations_on_bundles_ratio_memory_and_metrics() -> None:
    scenario = config(
        expect={
            "bundles_min": 2,
            "compression_ratio_min": 20,
            "peak_rss_growth_mib_max": 50,
            "metrics": {"ObjectsMissing": 3, "TestEvents": 1},
        }
    )
    memory = MemoryFigures(runner_start_mib=100, runner_peak_mib=180, emulator_peak_mib=None, exact=True)
    findings = TargetFindings(metrics={"ObjectsMissing": 2.0, "TestEvents": 1.0}, memory=memory)
    found = evidence([upload("x")], [bundle("b", ("x", "a"))], findings=findings)
    assert judge(scenario, found, None)[0] == [
        "1 bundle(s), expected at least 2",
        "compression ratio 0.10, expected at least 20",
        "peak RSS grew by 80 MiB, above the 50 MiB bound",
        "handler metric ObjectsMissing = 2, expected 3",
    ]
