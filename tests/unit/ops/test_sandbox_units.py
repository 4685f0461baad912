"""Sandbox pieces that need no emulator: ESM response rules, records, uploader content, demo maths."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from data_aggregator.models import ManifestEntry
from data_aggregator.ops.consume import ConsumedBundle
from data_aggregator.sandbox.checks import Stall, Whereabouts, locate_undelivered, percentile, reconcile
from data_aggregator.sandbox.demo import DemoOptions
from data_aggregator.sandbox.demo_report import DemoReport
from data_aggregator.sandbox.emulator import Emulator, EmulatorProcess, EmulatorUnavailableError
from data_aggregator.sandbox.esm import MappingSettings, failed_message_ids, lambda_record
from data_aggregator.sandbox.provision import QueueSettings
from data_aggregator.sandbox.uploader import MAX_KEY_BYTES, SizeMix, SyntheticUploader, UploadedFile, generate

IDS = {"m1", "m2", "m3"}


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
        ({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}, {"m1", "m3"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{}]}, None),
        ({"batchItemFailures": "m1"}, None),
        ("ok", None),
    ],
)
def test_partial_batch_response_rules(response: Any, failed: set[str] | None) -> None:
    assert failed_message_ids(response, IDS) == failed


def test_lambda_record_has_the_sqs_event_shape() -> None:
    message: Any = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "md5",
        "Attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "3",
        },
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"}},
    }
    record = lambda_record(message, "arn:aws:sqs:us-east-1:1:q", "us-east-1")
    assert record == {
        "messageId": "id-1",
        "receiptHandle": "rh",
        "body": "{}",
        "attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "3",
        },
        "messageAttributes": {
            "a": {"stringListValues": [], "binaryListValues": [], "dataType": "String", "stringValue": "v"}
        },
        "md5OfBody": "md5",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
        "awsRegion": "us-east-1",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch size"),
        ({"batch_size": 50, "batching_window_seconds": 0}, "batching window of at least 1 s"),
        ({"batching_window_seconds": 301}, "batching window"),
        ({"function_timeout_seconds": 901}, "function timeout"),
    ],
)
def test_mapping_settings_reject_what_lambda_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MappingSettings(**kwargs)


def test_queue_settings_validation() -> None:
    with pytest.raises(ValueError, match="max receive count"):
        QueueSettings(max_receive_count=0)


def test_generated_content_is_reproducible_and_shaped_as_configured() -> None:
    mix = SizeMix(small_min=10, small_max=2000, large_min=50_000, large_max=60_000, large_every=10, odd_every=3)
    first = list(itertools.islice(generate(7, mix), 60))
    assert first == list(itertools.islice(generate(7, mix), 60))
    assert first != list(itertools.islice(generate(8, mix), 60))
    keys = [key for key, _ in first]
    assert len(set(keys)) == len(keys)
    assert all(len(key.encode()) <= MAX_KEY_BYTES for key in keys)
    odd = keys[2::3]
    assert any(" " in k for k in odd)
    assert any("//" in k for k in odd)
    assert any("/../" in k for k in odd)
    assert any(k.startswith("/") for k in odd)
    assert any(not k.isascii() for k in odd)
    for index, (_, body) in enumerate(first, start=1):
        if index % 10 == 0:
            assert 50_000 <= len(body) <= 60_000
        else:
            assert 10 <= len(body) <= 2000
    long_keys = list(itertools.islice((k for k, _ in generate(1, SizeMix(odd_every=1))), 18))
    assert max(len(k.encode()) for k in long_keys) > 1000


def test_uploader_validates_its_arguments() -> None:
    s3: Any = object()
    with pytest.raises(ValueError, match="rate must be positive"):
        SyntheticUploader(s3, "b", rate=0, count=1)
    with pytest.raises(ValueError, match="count, a duration"):
        SyntheticUploader(s3, "b")
    assert SyntheticUploader(s3, "b", rate=10, count=500, duration=20).planned == 200
    assert SyntheticUploader(s3, "b", rate=10, count=50, duration=20).planned == 50
    with pytest.raises(ValueError, match="small_min"):
        SizeMix(small_min=5, small_max=1)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3
    assert percentile([], 0.5) == 0


def upload(key: str, sha: str = "a" * 64, size: int = 1, at: float = 100.0) -> UploadedFile:
    return UploadedFile(key=key, size=size, sha256=sha, etag="e", version_id=None, uploaded_at=at)


def bundle(seen: float, *entries: tuple[str, str, int, str]) -> ConsumedBundle:
    files = tuple(
        ManifestEntry(
            member=key,
            bucket=bucket,
            key=key,
            version_id=None,
            etag="e",
            size=size,
            sha256=sha,
            event_time=None,
        )
        for bucket, key, size, sha in entries
    )
    return ConsumedBundle(
        key="b",
        bundle_id="b",
        sha256="c" * 64,
        size=1,
        directory=Path(),
        files=files,
        first_seen=seen,
        forwarded=0,
    )


def test_reconcile_counts_every_kind_of_discrepancy() -> None:
    uploads = [upload("a"), upload("b", at=90.0), upload("c"), upload("d")]
    bundles = [
        bundle(110.0, ("landing", "a", 1, "a" * 64), ("landing", "b", 1, "a" * 64)),
        bundle(
            120.0,
            ("landing", "b", 1, "a" * 64),
            ("landing", "c", 1, "f" * 64),
            ("landing", "zzz", 1, "a" * 64),
        ),
        bundle(130.0, ("elsewhere", "d", 1, "a" * 64)),
    ]
    result = reconcile(uploads, bundles, "landing")
    assert result.uploaded == 4
    assert result.bundled == 2
    assert result.missing == ["c", "d"]
    assert result.duplicated == ["b"]
    assert result.altered == ["c"]
    assert result.unexpected == ["landing/zzz", "elsewhere/d"]
    assert sorted(result.latencies) == [10.0, 20.0]
    assert not result.ok


def test_clean_reconciliation_and_report() -> None:
    uploads = [upload("a"), upload("b")]
    result = reconcile(
        uploads, [bundle(101.5, ("landing", "a", 1, "a" * 64), ("landing", "b", 1, "a" * 64))], "landing"
    )
    assert result.ok
    report = DemoReport(options=DemoOptions(), reconciliation=result, bundles=1, poison_sent=2, dlq_depth=2)
    assert report.ok
    text = report.render()
    assert "  lost          0" in text
    assert "p50 1.5 s" in text
    assert "RESULT: PASS" in text
    report.dlq_depth = 3
    report.dlq_unexpected = ['{"Records": [...]}']
    report.dlq_url = "http://127.0.0.1:1/000000000000/dlq"
    assert report.problems == [
        "the DLQ holds 1 healthy message(s) besides the injected poison (their files arrived by another message): "
        '{"Records": [...]}'
    ]
    assert report.correctness_problems == report.problems
    assert "RESULT: FAIL (correctness)" in report.render()


def test_a_slow_run_misses_latency_targets_but_passes() -> None:
    slow = reconcile([upload("a", at=0.0)], [bundle(150.0, ("landing", "a", 1, "a" * 64))], "landing")
    late = DemoReport(options=DemoOptions(), reconciliation=slow)
    assert late.latency_problems == ["p95 is 150.0 s, above the 120 s target"]  # p99.9 (180 s) is met
    assert late.problems == []  # slow is not lossy, and latency measures the machine as much as the code
    text = late.render()
    assert "latency         MISSED on this machine (reported, not failed): p95 is 150.0 s" in text
    assert "RESULT: PASS" in text


def test_undelivered_files_are_reported_where_their_trail_ends() -> None:
    uploads = [upload(name) for name in ("a", "dlq", "queued", "gone")]
    result = reconcile(uploads, [bundle(101.0, ("landing", "a", 1, "a" * 64))], "landing")
    report = DemoReport(
        options=DemoOptions(),
        reconciliation=result,
        whereabouts=Whereabouts(dead_lettered=["dlq"], queued=["queued"], lost=["gone"]),
        dlq_url="http://127.0.0.1:1/000000000000/dlq",
        drained=False,
        stop_reason="the run stopped waiting: nothing moved for 140 s",
    )
    assert report.correctness_problems == [
        "1 file(s) lost (no trace anywhere), e.g. ['gone']",
        "1 healthy file(s) dead-lettered, e.g. ['dlq']; recoverable: data-aggregator dlq redrive --dlq "
        "http://127.0.0.1:1/000000000000/dlq",
    ]
    assert report.delivery_problems == [
        "1 file(s) not yet delivered (1 still queued), e.g. ['queued']: "
        "the run stopped waiting: nothing moved for 140 s"
    ]
    text = report.render()
    assert "  dead-lettered 1 (recoverable: data-aggregator dlq redrive --dlq http" in text
    assert "  still queued  1 (the run stopped waiting: nothing moved for 140 s)" in text
    assert "  lost          1" in text
    assert "RESULT: FAIL (correctness, delivery)" in text


def test_demo_options_enforce_timeout_lease_visibility_order() -> None:
    with pytest.raises(ValueError, match="function timeout < claim lease < visibility timeout"):
        DemoOptions(function_timeout_seconds=30, claim_lease_seconds=25, visibility_timeout=60)


class _FlakySqs:
    """Delivers one message, then fails the next receive, as an overloaded emulator does."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.fail_first = fail_first

    def receive_message(self, **_kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.fail_first or self.calls > 1:
            raise ConnectionError("emulator hiccup")
        return {"Messages": [{"MessageId": "m1", "ReceiptHandle": "h1", "Body": "{}"}]}


def test_a_failed_receive_mid_batch_invokes_with_what_was_received() -> None:
    from data_aggregator.sandbox.esm import EventSourceMapping

    mapping = EventSourceMapping(
        _FlakySqs(),  # type: ignore[arg-type]
        "url",
        "arn:aws:sqs:us-east-1:123456789012:q",
        handler=lambda _event, _context: {"batchItemFailures": []},
        settings=MappingSettings(batch_size=100, batching_window_seconds=5),
    )
    assert [m["MessageId"] for m in mapping.collect()] == ["m1"]
    empty = EventSourceMapping(
        _FlakySqs(fail_first=True),  # type: ignore[arg-type]
        "url",
        "arn:aws:sqs:us-east-1:123456789012:q",
        handler=lambda _event, _context: {},
    )
    with pytest.raises(ConnectionError):  # nothing in hand: the poller loop logs and polls again
        empty.collect()


@pytest.mark.parametrize("emulator_type", [Emulator, EmulatorProcess])
def test_emulator_without_the_demo_extra_names_the_install_command(
    emulator_type: type[Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # what a lean install without the extra looks like
    monkeypatch.setitem(sys.modules, "moto.server", None)
    with pytest.raises(EmulatorUnavailableError, match=r"uv sync --extra demo"):
        emulator_type().start()


def notification_body(key: str, version: str | None = None) -> str:
    obj: dict[str, Any] = {"key": key, "size": 1, "eTag": "e"}
    if version:
        obj["versionId"] = version
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "landing"}, "object": obj},
    }
    return json.dumps({"Records": [record]})


def test_locate_undelivered_follows_each_trail_to_its_end() -> None:
    uploads = [upload(name) for name in ("in-dlq", "queued", "claimed", "gone")] + [
        UploadedFile(key="twice", size=1, sha256="a" * 64, etag="e", version_id=v, uploaded_at=100.0)
        for v in ("v1", "v2")
    ]
    missing = ["claimed", "gone", "in-dlq", "queued", "twice (version v1)", "twice (version v2)"]
    found = locate_undelivered(
        uploads,
        missing,
        dead_letters=[notification_body("in-dlq"), "not json at all"],
        queued=[notification_body("queued"), notification_body("twice", "v2")],
        unread_in_queue=0,
        claimed_keys={"claimed"},
    )
    assert found.dead_lettered == ["in-dlq"]
    assert found.queued == ["queued", "twice (version v2)"]
    assert found.in_progress == ["claimed"]
    assert found.lost == ["gone", "twice (version v1)"]  # the other version's message does not count
    assert found.late == ["queued", "twice (version v2)", "claimed"]
    # With messages left that nobody could read, a file without a trace may be in one of them: late.
    hedged = locate_undelivered(uploads, ["gone"], dead_letters=[], queued=[], unread_in_queue=2, claimed_keys=set())
    assert (hedged.unread, hedged.lost) == (["gone"], [])


def test_a_stall_waits_while_anything_moves_and_says_why_it_stopped() -> None:
    now = [0.0]
    stall = Stall(60.0, clock=lambda: now[0])
    for step in range(10):  # progress every 50 s: never stalled, however long it takes
        now[0] = step * 50.0
        stall.observe(step)
        assert not stall.should_stop
    now[0] = 450.0 + 59.0
    assert not stall.should_stop
    now[0] = 450.0 + 60.0
    assert stall.should_stop
    assert stall.reason() == "the run stopped waiting: nothing moved for 60 s"
    limited = Stall(60.0, limit_seconds=100.0, clock=lambda: now[0])
    now[0] += 100.0
    limited.observe("moving")
    assert limited.should_stop
    assert "after its limit of 100 s, while still moving" in limited.reason()
