"""Faults from SPEC §5: transient errors, failed writes, broken streams, crashes, timeouts, races.

Each test ends by proving the invariant that matters: no file is lost (every uploaded file ends in
exactly one published bundle once the retries have run), and nothing half-done is ever published.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from data_aggregator import app
from data_aggregator.config import Settings
from data_aggregator.core import BuiltBundle, TimeoutGuard
from data_aggregator.service import BatchReport, InboundMessage
from e2e_tests.faults import FaultInjector, FaultRule, InvocationKilled, KillRule
from tests.integration.conftest import (
    AwsWorld,
    assert_each_exactly_once,
    emitted_metrics,
    expire_all_leases,
    invoke,
)
from tests.support import ARCHIVE, BASE_ENV, DISTRIBUTION, TABLE, failed_ids, notification, sqs_event, sqs_record


def batch_of(aws: AwsWorld, files: dict[str, bytes]) -> dict[str, Any]:
    return sqs_event(*(sqs_record(notification(aws.upload(k, v))) for k, v in files.items()))


FILES = {f"f{i}.txt": f"file {i}\n".encode() * 50 for i in range(6)}


# ------------------------------------------------------------------ transient errors


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(call="s3:GetObject", kind="server_error", at_calls=[1, 2]),
        FaultRule(call="s3:GetObject", kind="throttle", at_calls=[1, 2, 3]),
        FaultRule(call="s3:GetObject", kind="connection_reset", at_calls=[2]),
        FaultRule(call="s3:PutObject", kind="throttle", at_calls=[1, 2]),
        FaultRule(call="s3:PutObject", kind="connection_reset", at_calls=[2]),
        FaultRule(call="dynamodb:TransactWriteItems", kind="throttle", at_calls=[1, 2]),
        FaultRule(call="dynamodb:TransactWriteItems", kind="server_error", at_calls=[1]),
        FaultRule(call="dynamodb:TransactWriteItems", kind="throttle", at_calls=[2, 3]),  # intent, commit
    ],
    ids=lambda rule: rule.describe(),
)
def test_transient_errors_are_retried_and_the_batch_succeeds(
    aws: AwsWorld, faults: FaultInjector, rule: FaultRule
) -> None:
    fault = faults.add_fault(rule)
    event = batch_of(aws, FILES)
    assert invoke(event) == {"batchItemFailures": []}
    assert fault.injected == len(rule.at_calls or [])
    assert_each_exactly_once(aws, FILES)


def test_a_persistently_failing_object_fails_only_its_own_message(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    faults.add_fault(FaultRule(call="s3:GetObject", kind="server_error", probability=1.0, url_contains="/f3.txt"))
    event = batch_of(aws, FILES)
    bad = event["Records"][3]["messageId"]
    assert failed_ids(invoke(event)) == {bad}
    assert_each_exactly_once(aws, {k: v for k, v in FILES.items() if k != "f3.txt"})
    assert [i["status"] for i in aws.claim_items()].count("COMPLETED") == 5
    assert len(aws.claim_items()) == 5  # the failed one was released


@pytest.mark.parametrize("lost_response", [False, True], ids=["unreachable", "response-lost"])
def test_the_table_failing_for_good_fails_the_messages_and_loses_nothing(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch, lost_response: bool
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    outage = faults.add_fault(
        FaultRule(
            call="dynamodb:TransactWriteItems",
            kind="server_error" if lost_response else "connection_reset",
            applied=lost_response,
            at_calls=[1, 2, 3, 4, 5],
        )
    )
    event = batch_of(aws, FILES)
    response = invoke(event)
    assert outage.injected == 5
    assert failed_ids(response) == {r["messageId"] for r in event["Records"]}
    assert aws.bundle_keys(DISTRIBUTION) == []
    if lost_response:
        # The table did write the claims; only the answers were lost. They block until their lease
        # expires, exactly like a crashed invocation's: the messages are deferred until then.
        assert invoke(event) == {"batchItemFailures": []}
        assert aws.delayed() == len(event["Records"])
        expire_all_leases(aws)
    else:
        assert aws.claim_items() == []
    assert invoke(event) == {"batchItemFailures": []}  # the outage is over
    assert_each_exactly_once(aws, FILES)


# ------------------------------------------------------------------ failed writes


def test_recovery_works_with_the_role_terraform_grants_where_a_head_of_a_missing_bundle_is_403(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function may list Archive only below the bundle prefix, so AWS answers a HEAD of a bundle
    that is not there with 403 AccessDenied, not 404 (HeadObject, "Permissions": "If you don't have the
    s3:ListBucket permission, Amazon S3 returns an HTTP status code 403"). The emulators answer 404, so
    the rule stands in for IAM: recovery must not depend on a HEAD telling absent from denied."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    faults.add_fault(FaultRule(call="s3:HeadObject", bucket="archive", kind="access_denied", probability=1.0))
    # Every attempt the publisher makes (three) is refused before it reaches S3.
    refused = faults.add_fault(
        FaultRule(call="s3:PutObject", kind="connection_reset", bucket="archive", at_calls=[1, 2, 3])
    )
    event = batch_of(aws, FILES)
    assert failed_ids(invoke(event)) == {r["messageId"] for r in event["Records"]}
    assert refused.injected == 3
    assert aws.bundle_keys(ARCHIVE) == []  # the bundle never reached Archive; the claims were handed over
    expire_all_leases(aws)
    assert invoke(event) == {"batchItemFailures": []}  # the taker finds it absent and bundles afresh
    assert_each_exactly_once(aws, FILES)


@pytest.mark.parametrize("bucket", [ARCHIVE, DISTRIBUTION])
def test_a_failed_bundle_write_commits_nothing_and_the_retry_completes_the_same_bundle(
    aws: AwsWorld,
    faults: FaultInjector,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claims are handed over with their bundle key; the retry completes that bundle, no orphan."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # Every attempt the publisher makes (three) is refused before it reaches S3.
    denied = faults.add_fault(
        FaultRule(call="s3:PutObject", kind="connection_reset", bucket=bucket, at_calls=[1, 2, 3])
    )
    event = batch_of(aws, FILES)
    assert failed_ids(invoke(event)) == {r["messageId"] for r in event["Records"]}
    assert denied.injected == 3
    assert aws.bundle_keys(DISTRIBUTION) == []
    items = aws.claim_items()
    assert {(i["status"], int(i["lease_expires_at"])) for i in items} == {("IN_PROGRESS", 0)}  # handed over
    assert len({i["pending_bundle"] for i in items}) == 1
    assert emitted_metrics(capsys.readouterr().out)["UploadFailures"] == [1.0]
    # Redelivery: the same messages succeed and every file is published once, in one bundle.
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, FILES)
    assert aws.bundle_keys(ARCHIVE) == aws.bundle_keys(DISTRIBUTION)
    assert len(aws.bundle_keys(ARCHIVE)) == 1
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["BundlesRecovered"] == [1.0 if bucket == DISTRIBUTION else 0.0]


@pytest.mark.parametrize("bucket", [ARCHIVE, DISTRIBUTION])
def test_a_bundle_write_whose_answer_is_lost_is_not_repeated_into_a_duplicate(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch, bucket: str
) -> None:
    """S3 stored the bundle but the answer was lost: the conditional repeat gets 412 and knows it is there."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lost = faults.add_fault(
        FaultRule(call="s3:PutObject", kind="server_error", applied=True, bucket=bucket, at_calls=[1])
    )
    event = batch_of(aws, FILES)
    assert invoke(event) == {"batchItemFailures": []}
    assert lost.injected == 1
    assert_each_exactly_once(aws, FILES)
    assert {i["status"] for i in aws.claim_items()} == {"COMPLETED"}


def test_a_distribution_write_whose_every_answer_is_lost_is_completed_not_repeated(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 stored the bundle and every answer was lost: the handler takes it for a failure and hands
    the claims over; the retry finds the bundle in Archive, sees Distribution already holds it, commits."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lost = faults.add_fault(
        FaultRule(call="s3:PutObject", kind="server_error", applied=True, bucket=DISTRIBUTION, at_calls=[1, 2, 3])
    )
    event = batch_of(aws, FILES)
    assert failed_ids(invoke(event)) == {r["messageId"] for r in event["Records"]}
    assert lost.injected == 3
    assert len(aws.bundle_keys(DISTRIBUTION)) == 1  # the first attempt was stored; its repeats got 412
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, FILES)
    assert {i["status"] for i in aws.claim_items()} == {"COMPLETED"}


def test_a_failed_commit_after_publishing_still_acknowledges_and_never_bundles_again(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # Calls: 1 claim, 2 intent, 3.. commit rounds.
    faults.add_fault(FaultRule(call="dynamodb:TransactWriteItems", kind="server_error", at_calls=[3, 4, 5, 6, 7]))
    event = batch_of(aws, FILES)
    assert invoke(event) == {"batchItemFailures": []}  # durable in both buckets: acknowledged
    assert_each_exactly_once(aws, FILES)
    assert emitted_metrics(capsys.readouterr().out)["CommitFailures"] == [1.0]
    assert {i["status"] for i in aws.claim_items()} == {"IN_PROGRESS"}
    # The same notifications again once the leases ran out (a duplicate delivery): completed, not re-bundled.
    expire_all_leases(aws)
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, FILES)
    assert len(aws.bundle_keys(ARCHIVE)) == 1
    assert {i["status"] for i in aws.claim_items()} == {"COMPLETED"}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert (metrics["BundlesRecovered"], metrics["FilesBundled"]) == ([1.0], [0.0])


# ------------------------------------------------------------------ broken streams


@pytest.mark.parametrize("cuts", [1, 10], ids=["resumed", "abandoned"])
def test_a_broken_get_stream_is_resumed_or_the_bundle_abandoned(
    aws: AwsWorld, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch, cuts: int, capsys: pytest.CaptureFixture[str]
) -> None:
    published = cuts == 1
    files = {"a.bin": os.urandom(5000), "b.bin": os.urandom(5000), "c.bin": os.urandom(5000)}
    cut = faults.add_fault(
        FaultRule(call="s3:GetObject", kind="stream_cut", probability=1.0, max_injections=cuts, url_contains="/b.bin")
    )
    monkeypatch.setattr("data_aggregator.clients.time.sleep", lambda _s: None)
    event = batch_of(aws, files)
    response = invoke(event)
    if published:
        assert response == {"batchItemFailures": []}
        assert cut.injected == 1
        assert_each_exactly_once(aws, files)
        return
    # Abandoned: nothing published, every message of the bundle retried, no claim left behind.
    assert cut.injected == 4  # the first read and its three Range resumes
    assert failed_ids(response) == {r["messageId"] for r in event["Records"]}
    assert aws.bundle_keys(DISTRIBUTION) == aws.bundle_keys(ARCHIVE) == []
    assert aws.claim_items() == []
    assert emitted_metrics(capsys.readouterr().out)["BundlesAbandoned"] == [1.0]
    faults.clear()
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, files)


# ------------------------------------------------------------------ crashes and timeouts


@pytest.mark.parametrize("point", ["after_claim", "during_fetch", "after_archive_write"])
def test_a_crashed_invocation_loses_nothing(aws: AwsWorld, faults: FaultInjector, point: str) -> None:
    kill = faults.add_kill(KillRule(point=point, at_calls=[1]))  # type: ignore[arg-type]
    event = batch_of(aws, FILES)
    with pytest.raises(InvocationKilled), faults.invocation():
        invoke(event)  # Lambda reports an error: no partial response, the whole batch comes back
    assert kill.injected == 1
    assert aws.bundle_keys(DISTRIBUTION) == []
    assert {i["status"] for i in aws.claim_items()} == {"IN_PROGRESS"}  # a dead process releases nothing

    faults.clear()
    # Redelivered while the dead invocation's leases are still live: deferred until they run out (sent
    # back with a delay, not failed: the receive count is not spent), nothing published.
    assert invoke(event) == {"batchItemFailures": []}
    assert aws.delayed() == len(event["Records"])
    assert aws.bundle_keys(DISTRIBUTION) == []
    # After the leases expire (they are shorter than the visibility timeout), the retry delivers.
    expire_all_leases(aws)
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, FILES)
    assert len(aws.bundle_keys(ARCHIVE)) == 1  # a bundle the dead owner wrote was completed, not orphaned


def test_a_crash_between_publishing_and_commit_is_completed_not_duplicated(
    aws: AwsWorld, faults: FaultInjector, capsys: pytest.CaptureFixture[str]
) -> None:
    faults.add_kill(KillRule(point="after_distribution_write", at_calls=[1]))
    event = batch_of(aws, FILES)
    with pytest.raises(InvocationKilled), faults.invocation():
        invoke(event)
    first = aws.bundle_keys(DISTRIBUTION)
    assert faults.killed_bundle_keys == first
    faults.clear()
    expire_all_leases(aws)
    capsys.readouterr()
    assert invoke(event) == {"batchItemFailures": []}
    assert aws.bundle_keys(DISTRIBUTION) == aws.bundle_keys(ARCHIVE) == first
    assert_each_exactly_once(aws, FILES)
    assert {i["status"] for i in aws.claim_items()} == {"COMPLETED"}
    assert emitted_metrics(capsys.readouterr().out)["DuplicatesSkipped"] == [float(len(FILES))]


def test_a_bundle_the_consumer_already_took_is_not_delivered_again(aws: AwsWorld, faults: FaultInjector) -> None:
    """Killed after the Distribution write; the consumer deletes the bundle before the retry. The
    versioned bucket's delete marker says "delivered": the retry commits without writing it back."""
    faults.add_kill(KillRule(point="after_distribution_write", at_calls=[1]))
    event = batch_of(aws, FILES)
    with pytest.raises(InvocationKilled), faults.invocation():
        invoke(event)
    faults.clear()
    (key,) = aws.bundle_keys(DISTRIBUTION)
    aws.s3.delete_object(Bucket=DISTRIBUTION, Key=key)  # consumed
    expire_all_leases(aws)
    assert invoke(event) == {"batchItemFailures": []}
    assert aws.bundle_keys(DISTRIBUTION) == []
    assert aws.bundle_keys(ARCHIVE) == [key]
    assert {i["status"] for i in aws.claim_items()} == {"COMPLETED"}


def test_the_lease_always_outlives_the_invocation() -> None:
    settings = Settings.from_env({**BASE_ENV, "CLAIM_LEASE_SECONDS": "60"})
    assert app.lease_seconds(settings, 900.0) == 930
    assert app.lease_seconds(Settings.from_env(BASE_ENV), 100.0) == 360


# ------------------------------------------------------------------ concurrent invocations


def test_two_invocations_racing_on_the_same_objects_publish_each_once(aws: AwsWorld) -> None:
    """B runs while A is writing its bundle: B must back off (held), and its retry finds duplicates."""
    settings = Settings.from_env(BASE_ENV)
    clients = app.make_clients()  # type: ignore[attr-defined]
    files = {f"race{i}": os.urandom(200) for i in range(10)}
    messages = [InboundMessage(r["messageId"], r["body"]) for r in batch_of(aws, files)["Records"]]
    reports: dict[str, BatchReport] = {}

    def run(name: str) -> None:
        aggregator = app.build_aggregator(settings, clients)
        guard = TimeoutGuard(lambda: 600.0, reserve_seconds=1, bytes_per_second=10**9)
        reports[name] = aggregator.run(messages, guard=guard, owner=name, lease_seconds=600)

    class InterleavingPublisher:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put(self, bucket: str, key: str, bundle: BuiltBundle) -> None:
            if bucket == ARCHIVE and "B" not in reports:
                run("B")  # the second invocation runs to completion in the middle of A's publish
            self.inner.put(bucket, key, bundle)

    a = app.build_aggregator(settings, clients)
    a._publisher = InterleavingPublisher(a._publisher)  # type: ignore[assignment]
    guard = TimeoutGuard(lambda: 600.0, reserve_seconds=1, bytes_per_second=10**9)
    reports["A"] = a.run(messages, guard=guard, owner="A", lease_seconds=600)

    assert reports["A"].failures == {}
    assert set(reports["B"].failures) == {m.message_id for m in messages}
    assert reports["B"].claims_held == 10
    run("B")  # B's redelivery
    assert reports["B"].failures == {}
    assert reports["B"].duplicates == 10
    assert_each_exactly_once(aws, files)


class SerializedCalls:
    """moto's TransactWriteItems deep-copies the table unguarded; real DynamoDB serialises per item.

    Holding a lock per call keeps the emulator consistent while the invocations still interleave
    call by call, which is where the races between them live.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return locked


def test_parallel_invocations_never_publish_an_object_twice(aws: AwsWorld) -> None:
    settings = Settings.from_env({**BASE_ENV, "MAX_FILES_PER_BUNDLE": "5"})
    real = app.make_clients()  # type: ignore[attr-defined]
    clients = type(real)(s3=real.s3, dynamodb=SerializedCalls(real.dynamodb), sqs=real.sqs)  # type: ignore[arg-type]
    files = {f"p{i:02}": os.urandom(300) for i in range(30)}
    messages = [InboundMessage(r["messageId"], r["body"]) for r in batch_of(aws, files)["Records"]]
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            remaining = list(messages)
            for _ in range(200):
                if not remaining:
                    return
                time.sleep(0.02)  # a redelivery comes back later, not at once
                guard = TimeoutGuard(lambda: 600.0, reserve_seconds=1, bytes_per_second=10**9)
                report = app.build_aggregator(settings, clients).run(
                    remaining, guard=guard, owner=name, lease_seconds=600
                )
                remaining = [m for m in remaining if m.message_id in report.failures]
            errors.append(AssertionError(f"{name} never finished"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_each_exactly_once(aws, files)


def test_a_lease_that_expires_while_the_bundle_uploads_never_doubles_a_file(aws: AwsWorld) -> None:
    """A's Archive write outlasts its lease (a clock that jumps, as a stall would); B takes the claims
    over meanwhile, finds nothing in Archive yet and bundles the files itself. A must then neither write
    Distribution nor touch B's claims: one copy in Distribution, A's orphan left in Archive, fences lost."""
    settings = Settings.from_env(BASE_ENV)
    clients = app.make_clients()  # type: ignore[attr-defined]
    files = {f"lease{i}": os.urandom(200) for i in range(4)}
    messages = [InboundMessage(r["messageId"], r["body"]) for r in batch_of(aws, files)["Records"]]
    now = [time.time()]
    reports: dict[str, BatchReport] = {}

    def guard() -> TimeoutGuard:
        return TimeoutGuard(lambda: 600.0, reserve_seconds=1, bytes_per_second=10**9)

    class SlowArchive:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put(self, bucket: str, key: str, bundle: BuiltBundle) -> None:
            if bucket == ARCHIVE and "B" not in reports:
                now[0] += 120  # A's lease (60 s) runs out while its Archive write is under way
                b = app.build_aggregator(settings, clients)
                b._clock = lambda: now[0]
                b._claims._clock = lambda: now[0]  # type: ignore[attr-defined]
                reports["B"] = b.run(messages, guard=guard(), owner="B", lease_seconds=60)
            self.inner.put(bucket, key, bundle)

    a = app.build_aggregator(settings, clients)
    a._clock = lambda: now[0]
    a._claims._clock = lambda: now[0]  # type: ignore[attr-defined]
    a._publisher = SlowArchive(a._publisher)  # type: ignore[assignment]
    reports["A"] = a.run(messages, guard=guard(), owner="A", lease_seconds=60)

    assert reports["B"].failures == {}
    assert reports["B"].files_bundled == len(files)
    assert set(reports["A"].failures) == {m.message_id for m in messages}  # A published nothing it could vouch for
    assert reports["A"].fences_lost == len(files)  # its hand-over met B's claims
    assert_each_exactly_once(aws, files)
    assert len(aws.bundle_keys(ARCHIVE)) == 2  # A's orphan and B's bundle; only B's reached Distribution
    assert {i["owner"] for i in aws.claim_items()} == {"B"}


def test_claims_taken_over_before_the_intent_fail_their_messages_and_are_left_to_the_new_owner(
    aws: AwsWorld,
) -> None:
    """An invocation that outlived its lease (a zombie) must not acknowledge what it no longer owns:
    if the new owner's attempt then failed, nobody would retry the file."""
    settings = Settings.from_env(BASE_ENV)
    clients = app.make_clients()  # type: ignore[attr-defined]
    files = {f"zombie{i}": os.urandom(100) for i in range(3)}
    messages = [InboundMessage(r["messageId"], r["body"]) for r in batch_of(aws, files)["Records"]]

    class TakenOverBeforeIntent:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def record_intent(self, objects: Any, *, owner: str, bundle_key: str) -> set[str]:
            taken = objects[0]
            aws.dynamodb.update_item(
                TableName=TABLE,
                Key={"ObjectID": {"S": taken.object_id}},
                UpdateExpression="SET #o = :b",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":b": {"S": "newer-owner"}},
            )
            result: set[str] = self.inner.record_intent(objects, owner=owner, bundle_key=bundle_key)
            return result

    zombie = app.build_aggregator(settings, clients)
    zombie._claims = TakenOverBeforeIntent(zombie._claims)
    guard = TimeoutGuard(lambda: 600.0, reserve_seconds=1, bytes_per_second=10**9)
    report = zombie.run(messages, guard=guard, owner="zombie", lease_seconds=600)
    assert set(report.failures) == {m.message_id for m in messages}
    assert report.fences_lost == 1
    assert aws.bundle_keys(ARCHIVE) == []
    owners = {i["owner"] for i in aws.claim_items()}
    assert owners == {"newer-owner"}  # the zombie released its own two claims and left the third alone
