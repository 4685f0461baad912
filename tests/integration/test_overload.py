"""Overload is slow, never lossy: work the invocation has no time for is deferred, not failed (SPEC §5).

A message the timeout guard leaves for later, one cut by the deadline, or one whose claim another live
invocation holds is sent to the queue again (same body and attributes, a deferral count added) and
acknowledged, so it never spends a receive on the way to the dead-letter queue. A message that failed
on its own (a size mismatch, poison) still fails. And an invocation always finishes a share of its
batch in proportion to its time, however slow the claim store.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator import app
from data_aggregator.clients import DEFERRALS_ATTRIBUTE, FIRST_SENT_ATTRIBUTE
from data_aggregator.sandbox.context import LambdaContext
from data_aggregator.sandbox.esm import lambda_record
from e2e_tests.faults import FaultInjector, FaultRule
from tests.integration.conftest import (
    AwsWorld,
    assert_each_exactly_once,
    emitted_metrics,
    expire_all_leases,
    invoke,
    logged,
    published_files,
)
from tests.support import EVENTS_QUEUE, TABLE, failed_ids, notification, sqs_event, sqs_record

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

QUEUE_ARN = f"arn:aws:sqs:us-east-1:123456789012:{EVENTS_QUEUE}"


def one_message_each(aws: AwsWorld, files: dict[str, bytes]) -> dict[str, Any]:
    return sqs_event(*(sqs_record(notification(aws.upload(k, v))) for k, v in files.items()))


def as_event(messages: list[MessageTypeDef]) -> dict[str, Any]:
    """What the event source mapping would deliver for messages received from the queue."""
    return {"Records": [lambda_record(m, QUEUE_ARN, "us-east-1") for m in messages]}


def attribute(message: MessageTypeDef, name: str) -> str:
    return message["MessageAttributes"][name]["StringValue"]


@pytest.fixture
def slow_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 kB/s assumed and a 10 s reserve: with 15 s left, about four 1 kB files fit in a bundle."""
    monkeypatch.setenv("GUARD_BYTES_PER_SECOND", "1000")
    monkeypatch.setenv("TIMEOUT_RESERVE_SECONDS", "10")


def test_a_message_deferred_again_waits_longer_each_time(aws: AwsWorld) -> None:
    now_ms = int(time.time() * 1000)
    first = sqs_record(notification(aws.upload("first.txt", b"payload")))
    again = deferred_record(aws, "again.txt", deferrals=1, first_sent_ms=now_ms)
    assert invoke(sqs_event(first, again), remaining_ms=5_000) == {"batchItemFailures": []}
    (immediately,) = aws.queued()  # the first deferral comes back at once
    assert json.loads(immediately["Body"]) == json.loads(first["body"])
    assert aws.delayed() == 1  # the second waits: an overload that outlasts a deferral is not passing


def test_work_the_guard_leaves_is_deferred_and_acknowledged_not_failed(
    aws: AwsWorld, slow_guard: None, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {f"f{i}.bin": os.urandom(1000) for i in range(10)}
    event = one_message_each(aws, files)
    bodies = {r["messageId"]: r["body"] for r in event["Records"]}
    sent = {r["attributes"]["SentTimestamp"] for r in event["Records"]}

    assert invoke(event, remaining_ms=15_000) == {"batchItemFailures": []}  # nothing spends a receive

    published = {f.key for f in published_files(aws)}
    assert 0 < len(published) < len(files)  # a share, in proportion to the time
    deferred = aws.queued()
    assert len(deferred) == len(files) - len(published)
    assert sorted(m["Body"] for m in deferred) == sorted(
        body for body in bodies.values() if json.loads(body)["Records"][0]["s3"]["object"]["key"] not in published
    )
    for message in deferred:  # the body as it was, plus the deferral's own bookkeeping
        assert attribute(message, DEFERRALS_ATTRIBUTE) == "1"
        assert attribute(message, FIRST_SENT_ATTRIBUTE) in sent  # the original's SentTimestamp
    assert {item["object_key"] for item in aws.claim_items() if item["status"] != "COMPLETED"} == set()
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["MessagesDeferred"] == [float(len(deferred))]
    assert metrics["DeadlineLeftovers"] == [float(len(deferred))]
    assert metrics["MessagesFailed"] == [0.0]

    # The deferred copies come back first in their next batch and are bundled: each file exactly once.
    assert invoke(as_event(deferred), remaining_ms=60_000) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, files)
    assert aws.queued() == []


def test_with_no_time_left_nothing_starts_nothing_is_held_and_everything_is_deferred(aws: AwsWorld) -> None:
    files = {f"f{i}.txt": b"x" * 100 for i in range(4)}
    event = one_message_each(aws, files)
    assert invoke(event, remaining_ms=5_000) == {"batchItemFailures": []}
    assert aws.bundle_keys("distribution-bucket") == []
    assert aws.claim_items() == []
    assert len(aws.queued()) == len(files)


def test_an_object_no_invocation_could_ever_finish_fails_for_good_instead_of_waiting_for_ever(
    aws: AwsWorld, slow_guard: None, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # 6 kB at 1 kB/s plus the 10 s reserve is more than the 15 s any invocation of this function has.
    event = one_message_each(aws, {"small.bin": os.urandom(1000), "huge.bin": os.urandom(6000)})
    huge = event["Records"][1]["messageId"]
    assert failed_ids(invoke(event, remaining_ms=15_000)) == {huge}
    assert_each_exactly_once(aws, {"small.bin": aws.read("landing-bucket", "small.bin")})
    assert aws.queued() == []
    assert "needs more than the 15 s an invocation has" in logged(caplog)
    assert emitted_metrics(capsys.readouterr().out)["ObjectsTooLarge"] == [1.0]


def test_a_deferral_that_cannot_be_sent_fails_its_message_as_before(
    aws: AwsWorld, slow_guard: None, faults: FaultInjector
) -> None:
    faults.add_fault(FaultRule(call="sqs:SendMessageBatch", kind="server_error", probability=1.0))
    files = {f"f{i}.bin": os.urandom(1000) for i in range(10)}
    event = one_message_each(aws, files)
    failed = failed_ids(invoke(event, remaining_ms=15_000))
    published = {f.key for f in published_files(aws)}
    assert 0 < len(published) < len(files)
    assert len(failed) == len(files) - len(published)  # SQS redelivers them, as without deferral
    faults.clear()
    assert invoke(event, remaining_ms=60_000) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, files)


def deferred_record(aws: AwsWorld, key: str, *, deferrals: int, first_sent_ms: int) -> dict[str, Any]:
    record = sqs_record(notification(aws.upload(key, b"payload")))
    record["messageAttributes"] = {
        DEFERRALS_ATTRIBUTE: {"stringValue": str(deferrals), "dataType": "Number"},
        FIRST_SENT_ATTRIBUTE: {"stringValue": str(first_sent_ms), "dataType": "Number"},
    }
    return record


def test_deferral_is_bounded_in_number_and_in_age(
    aws: AwsWorld, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    now_ms = int(time.time() * 1000)
    too_often = deferred_record(aws, "often.txt", deferrals=20, first_sent_ms=now_ms)
    too_old = deferred_record(aws, "old.txt", deferrals=1, first_sent_ms=now_ms - 86_401_000)
    fresh = deferred_record(aws, "fresh.txt", deferrals=19, first_sent_ms=now_ms - 60_000)
    event = sqs_event(too_often, too_old, fresh)
    failed = failed_ids(invoke(event, remaining_ms=5_000))  # no time for anything
    assert failed == {too_often["messageId"], too_old["messageId"]}  # these now spend their receives
    # The fresh one is deferred once more, and after 19 deferrals its copy waits SQS's longest delay.
    assert aws.delayed() == 1
    assert aws.queued() == []
    assert "already deferred the most times allowed" in logged(caplog)
    assert "DEFERRAL_MAX_AGE_SECONDS" in logged(caplog)
    assert emitted_metrics(capsys.readouterr().out)["DeferralsRefused"] == [2.0]


def test_a_message_with_a_failure_of_its_own_fails_even_when_time_ran_out_too(aws: AwsWorld, slow_guard: None) -> None:
    fitting = [aws.upload(f"b{i}.bin", os.urandom(1000)) for i in range(4)]
    wrong_size = aws.upload("wrong-size.bin", os.urandom(900))
    wrong_size["s3"]["object"]["size"] = 1000  # a version-pinned read of another size: not retryable
    late = aws.upload("late.bin", os.urandom(1000))
    healthy = sqs_record(notification(*fitting))
    mixed = sqs_record(notification(wrong_size, late))
    assert failed_ids(invoke(sqs_event(healthy, mixed), remaining_ms=15_000)) == {mixed["messageId"]}
    assert aws.queued() == []  # a message that failed on its own is never deferred


def test_a_claim_held_by_a_live_invocation_is_deferred_until_its_lease_runs_out(
    aws: AwsWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    record = aws.upload("held.txt", b"payload")
    event = sqs_event(sqs_record(notification(record)))
    from data_aggregator.events import parse_message

    (obj,) = parse_message(event["Records"][0]["body"]).objects
    aws.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "ObjectID": {"S": obj.object_id},
            "status": {"S": "IN_PROGRESS"},
            "owner": {"S": "another-invocation"},
            "lease_expires_at": {"N": str(int(time.time()) + 300)},
        },
    )
    assert invoke(event) == {"batchItemFailures": []}
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # back once the holder's lease ran out
    assert attributes["ApproximateNumberOfMessages"] == "0"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ClaimsHeld"] == [1.0]
    assert metrics["MessagesDeferred"] == [1.0]


def test_a_large_batch_on_a_slow_claim_store_publishes_a_share_and_defers_the_rest(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every claim-store request takes a second: claiming 300 files, recording the intent and committing
    them takes longer than the invocation has. It must publish what fits and leave only the rest."""
    monkeypatch.setenv("TIMEOUT_RESERVE_SECONDS", "1")
    faults.add_fault(FaultRule(call="dynamodb:TransactWriteItems", kind="slow", seconds=1.0, probability=1.0))
    files = {f"batch/{i:03}.json": json.dumps({"i": i}).encode() * 20 for i in range(300)}
    event = sqs_event(*(sqs_record(notification(aws.upload(k, v))) for k, v in files.items()))
    context = LambdaContext(function_name="data-aggregator", timeout_seconds=9.0)

    response = app.handler(event, context)

    assert not context.timed_out
    assert response == {"batchItemFailures": []}
    published = {f.key for f in published_files(aws)}
    assert published, "a slow claim store must make the invocation do less, never nothing"
    # The rest is back in the queue: at once, or (claims it had no time to release) after its lease.
    assert len(published) + len(aws.queued()) + aws.delayed() == len(files)
    faults.clear()
    expire_all_leases(aws)
    assert invoke(event) == {"batchItemFailures": []}  # every message again: the rest, and duplicates
    assert_each_exactly_once(aws, files)
