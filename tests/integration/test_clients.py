"""S3 and DynamoDB facades against moto: resume, version lookup, publish, and the claim state machine."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ResponseStreamingError
from urllib3.exceptions import ProtocolError

from data_aggregator.clients import BundlePublisher, ClaimStore, LandingReader, make_clients
from data_aggregator.core import BuiltBundle, BundleWriter
from data_aggregator.errors import ClaimStoreError, FetchError, ObjectMissingError, PermanentStoreError, UploadError
from data_aggregator.models import ClaimStatus, SourceObject
from tests.integration.conftest import AwsWorld
from tests.support import ARCHIVE, DISTRIBUTION, LANDING, TABLE, chunked, sha256_hex

NO_SLEEP = lambda _seconds: None  # noqa: E731


class BreakingBody:
    """A GetObject body that dies with a protocol error after ``limit`` bytes."""

    def __init__(self, body: Any, limit: int) -> None:
        self._body = body
        self._limit = limit

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        sent = 0
        for chunk in self._body.iter_chunks(min(chunk_size, 1000)):
            if sent + len(chunk) > self._limit:
                yield chunk[: self._limit - sent]
                raise ResponseStreamingError(error=ProtocolError("Connection broken: IncompleteRead"))
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self._body.close()


class FlakyS3:
    """Delegates to a real client; the first ``breaks`` GetObject bodies break after ``limit`` bytes."""

    def __init__(self, client: Any, *, breaks: int, limit: int) -> None:
        self._client = client
        self.breaks = breaks
        self.limit = limit
        self.requests: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        response = self._client.get_object(**kwargs)
        if self.breaks > 0:
            self.breaks -= 1
            response["Body"] = BreakingBody(response["Body"], self.limit)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def read_all(reader: LandingReader, obj: SourceObject) -> bytes:
    stream = reader.open(obj)
    try:
        return b"".join(stream.chunks())
    finally:
        stream.close()


def landing_object(aws: AwsWorld, key: str, body: bytes) -> SourceObject:
    response = aws.s3.put_object(Bucket=LANDING, Key=key, Body=body)
    return SourceObject(LANDING, key, version_id=response.get("VersionId"), etag=response["ETag"].strip('"'))


# ------------------------------------------------------------------ reading


def test_reads_in_chunks_no_larger_than_configured(aws: AwsWorld) -> None:
    data = os.urandom(50_000)
    obj = landing_object(aws, "a", data)
    stream = LandingReader(aws.s3, chunk_size=4096).open(obj)
    chunks = list(stream.chunks())
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 4096
    assert stream.size == len(data)
    assert stream.version_id == obj.version_id


def test_a_broken_stream_resumes_with_a_range_request(aws: AwsWorld) -> None:
    data = os.urandom(20_000)
    obj = landing_object(aws, "resume-me", data)
    flaky = FlakyS3(aws.s3, breaks=2, limit=7_000)
    reader = LandingReader(flaky, chunk_size=4096, sleep=NO_SLEEP)  # type: ignore[arg-type]
    assert read_all(reader, obj) == data
    assert [r.get("Range") for r in flaky.requests] == [None, "bytes=7000-", "bytes=14000-"]
    assert all(r["VersionId"] == obj.version_id for r in flaky.requests)
    assert flaky.requests[1]["IfMatch"] == f'"{obj.etag}"'


def test_a_stream_that_keeps_breaking_fails_after_the_resume_budget(aws: AwsWorld) -> None:
    obj = landing_object(aws, "hopeless", os.urandom(10_000))
    reader = LandingReader(FlakyS3(aws.s3, breaks=99, limit=100), chunk_size=4096, max_resumes=3, sleep=NO_SLEEP)  # type: ignore[arg-type]
    with pytest.raises(FetchError, match="after 3 resumes") as caught:
        read_all(reader, obj)
    assert caught.value.retryable


def test_missing_key_and_missing_version_are_reported_as_missing(aws: AwsWorld) -> None:
    reader = LandingReader(aws.s3, chunk_size=4096)
    with pytest.raises(ObjectMissingError, match="NoSuchKey"):
        reader.open(SourceObject(LANDING, "never-written"))
    obj = landing_object(aws, "v", b"1")
    with pytest.raises(ObjectMissingError, match="NoSuchVersion"):
        reader.open(SourceObject(LANDING, "v", version_id="not-a-version"))
    aws.s3.delete_object(Bucket=LANDING, Key="v", VersionId=obj.version_id or "")
    with pytest.raises(ObjectMissingError):
        reader.open(obj)


def test_event_without_version_finds_the_overwritten_version_by_etag(aws: AwsWorld) -> None:
    first = landing_object(aws, "same-key", b"version one")
    landing_object(aws, "same-key", b"version two")
    event_view = SourceObject(LANDING, "same-key", etag=first.etag)  # what an emulator's event carries
    stream = LandingReader(aws.s3, chunk_size=4096).open(event_view)
    assert b"".join(stream.chunks()) == b"version one"
    assert stream.version_id == first.version_id


def test_overwritten_object_in_an_unversioned_bucket_is_missing_not_the_new_bytes(aws: AwsWorld) -> None:
    aws.s3.create_bucket(Bucket="plain")
    old = aws.s3.put_object(Bucket="plain", Key="k", Body=b"old")
    aws.s3.put_object(Bucket="plain", Key="k", Body=b"new")
    with pytest.raises(ObjectMissingError, match="overwritten before it was read"):
        LandingReader(aws.s3, chunk_size=4096).open(SourceObject("plain", "k", etag=old["ETag"].strip('"')))


class DenyingS3:
    def get_object(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")


def test_access_denied_is_not_retryable() -> None:
    with pytest.raises(FetchError) as caught:
        LandingReader(DenyingS3(), chunk_size=4096).open(SourceObject("b", "k"))  # type: ignore[arg-type]
    assert caught.value.retryable is False
    assert caught.value.context()["operation"] == "GetObject"


# ------------------------------------------------------------------ publishing


def make_bundle(size: int) -> BuiltBundle:
    data = os.urandom(size)
    writer = BundleWriter(bundle_id="b", created_at=datetime.now(UTC))
    writer.add(SourceObject("land", "f"), member="f", size=len(data), chunks=chunked(data, 1 << 20))
    return writer.finish()


@pytest.mark.parametrize("size", [1000, 7 * 1024 * 1024])
def test_publish_sets_type_metadata_and_checksum(aws: AwsWorld, size: int) -> None:
    bundle = make_bundle(size)
    publisher = BundlePublisher(aws.s3, multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    publisher.put(ARCHIVE, "bundles/x.tar.gz", bundle)
    publisher.put(DISTRIBUTION, "bundles/x.tar.gz", bundle)
    for bucket in (ARCHIVE, DISTRIBUTION):
        head = aws.s3.head_object(Bucket=bucket, Key="bundles/x.tar.gz")
        stored = aws.read(bucket, "bundles/x.tar.gz")
        assert head["ContentType"] == "application/gzip"
        assert "ContentEncoding" not in head
        assert head["Metadata"]["content-sha256"] == sha256_hex(stored) == bundle.sha256_hex
        # moto accepts any ChecksumSHA256, so check that what we sent is right ourselves.
        assert base64.b64decode(bundle.sha256_b64) == hashlib.sha256(stored).digest()
    assert aws.read(ARCHIVE, "bundles/x.tar.gz") == aws.read(DISTRIBUTION, "bundles/x.tar.gz")


@pytest.mark.parametrize("size", [1000, 7 * 1024 * 1024], ids=["single", "multipart"])
def test_uploads_carry_their_sha256_and_are_not_hashed_again_to_be_signed(aws: AwsWorld, size: int) -> None:
    """botocore would read and SHA-256 every upload body once more for the signature; S3 checks the
    ChecksumSHA256 we send instead, so the signature covers the headers (that checksum included)."""
    s3 = make_clients().s3
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: object) -> None:  # request: botocore's AWSPreparedRequest
        sent.append(
            {
                name.lower(): value.decode() if isinstance(value, bytes) else str(value)
                for name, value in request.headers.items()
            }
        )

    s3.meta.events.register("before-send.s3", capture)
    bundle = make_bundle(size)
    BundlePublisher(s3, multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024).put(
        ARCHIVE, "bundles/signed.tar.gz", bundle
    )
    uploads = [headers for headers in sent if "x-amz-checksum-sha256" in headers]
    assert uploads
    assert all(headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD" for headers in uploads)
    if size < 5 * 1024 * 1024:
        assert uploads[0]["x-amz-checksum-sha256"] == bundle.sha256_b64
    assert sha256_hex(aws.read(ARCHIVE, "bundles/signed.tar.gz")) == bundle.sha256_hex


@pytest.mark.parametrize("size", [1000, 7 * 1024 * 1024], ids=["single", "multipart"])
def test_a_repeated_publish_never_overwrites_and_counts_as_done(aws: AwsWorld, size: int) -> None:
    """Both paths are conditional: a repeat of a stored write gets 412, which means "already there"."""
    bundle = make_bundle(size)
    other = make_bundle(size)
    calls: list[str] = []
    aws.s3.meta.events.register("before-call.s3", lambda **kw: calls.append(kw["model"].name))
    publisher = BundlePublisher(aws.s3, multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    publisher.put(ARCHIVE, "bundles/once.tar.gz", bundle)
    publisher.put(ARCHIVE, "bundles/once.tar.gz", other)  # a second writer: refused, the first bytes stay
    assert sha256_hex(aws.read(ARCHIVE, "bundles/once.tar.gz")) == bundle.sha256_hex
    versions = aws.s3.list_object_versions(Bucket=ARCHIVE, Prefix="bundles/once.tar.gz").get("Versions", [])
    assert len(versions) == 1
    if size > 5 * 1024 * 1024:
        assert "CompleteMultipartUpload" in calls
        assert "AbortMultipartUpload" in calls  # the refused completion leaves no parts behind
        assert aws.s3.list_multipart_uploads(Bucket=ARCHIVE).get("Uploads", []) == []


def test_recovery_reads_tell_archived_delivered_and_consumed_apart(aws: AwsWorld) -> None:
    publisher = BundlePublisher(aws.s3, multipart_threshold=5 * 1024 * 1024)
    key = "bundles/r.tar.gz"
    assert not publisher.exists(ARCHIVE, key)
    assert not publisher.ever_written(DISTRIBUTION, key)
    bundle = make_bundle(3000)
    publisher.put(ARCHIVE, key, bundle)
    assert publisher.exists(ARCHIVE, key)
    publisher.put(DISTRIBUTION, key, publisher.read(ARCHIVE, key))
    assert sha256_hex(aws.read(DISTRIBUTION, key)) == bundle.sha256_hex
    aws.s3.delete_object(Bucket=DISTRIBUTION, Key=key)  # the consumer took it
    assert publisher.ever_written(DISTRIBUTION, key)
    assert not publisher.ever_written(DISTRIBUTION, "bundles/r.tar")  # a prefix of the key is another key


def test_a_stored_bundle_that_does_not_match_its_digest_is_not_copied(aws: AwsWorld) -> None:
    aws.s3.put_object(Bucket=ARCHIVE, Key="bundles/bad.tar.gz", Body=b"corrupt", Metadata={"content-sha256": "0" * 64})
    publisher = BundlePublisher(aws.s3, multipart_threshold=5 * 1024 * 1024)
    with pytest.raises(UploadError, match="does not match its content-sha256") as caught:
        publisher.read(ARCHIVE, "bundles/bad.tar.gz")
    assert not caught.value.retryable


def test_publish_failure_is_an_upload_error(aws: AwsWorld) -> None:
    publisher = BundlePublisher(aws.s3, multipart_threshold=5 * 1024 * 1024)
    with pytest.raises(UploadError, match="NoSuchBucket") as caught:
        publisher.put("no-such-bucket", "k", make_bundle(10))
    assert caught.value.retryable


# ------------------------------------------------------------------ claims


class Clock:
    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(aws: AwsWorld, clock: Clock | None = None) -> ClaimStore:
    return ClaimStore(
        aws.dynamodb, table=TABLE, ttl_attribute="ttl", ttl_days=7, clock=clock or Clock(), sleep=NO_SLEEP
    )


def test_claim_state_machine(aws: AwsWorld) -> None:
    clock = Clock()
    store = claims(aws, clock)
    obj = SourceObject(LANDING, "k", etag="e")
    assert store.claim([obj], owner="A", lease_seconds=300)[obj.object_id].status is ClaimStatus.CLAIMED
    item = aws.claim_item(obj.object_id)
    assert item is not None
    assert item["status"] == "IN_PROGRESS"
    assert item["owner"] == "A"
    assert int(item["lease_expires_at"]) == clock.now + 300
    assert int(item["ttl"]) == clock.now + 7 * 86400
    assert item["object_key"] == "k"

    # A live lease held by someone else: retry later.
    assert store.claim([obj], owner="B", lease_seconds=300)[obj.object_id].status is ClaimStatus.HELD
    # Our own retry of the same claim is ours.
    assert store.claim([obj], owner="A", lease_seconds=300)[obj.object_id].status is ClaimStatus.CLAIMED

    store.commit([obj], owner="A", bundle_key="bundles/b.tar.gz")
    result = store.claim([obj], owner="C", lease_seconds=300)[obj.object_id]
    assert result.status is ClaimStatus.DUPLICATE
    assert result.bundle_key == "bundles/b.tar.gz"


def test_an_expired_lease_is_taken_over(aws: AwsWorld) -> None:
    clock = Clock()
    store = claims(aws, clock)
    obj = SourceObject(LANDING, "crashed", etag="e")
    store.claim([obj], owner="dead", lease_seconds=60)
    clock.now += 61
    assert store.claim([obj], owner="alive", lease_seconds=60)[obj.object_id].status is ClaimStatus.CLAIMED
    item = aws.claim_item(obj.object_id)
    assert item is not None
    assert item["owner"] == "alive"


def test_release_removes_the_claim(aws: AwsWorld) -> None:
    store = claims(aws)
    obj = SourceObject(LANDING, "r", etag="e")
    store.claim([obj], owner="A", lease_seconds=60)
    store.release([obj], owner="A")
    assert aws.claim_item(obj.object_id) is None
    assert store.claim([obj], owner="B", lease_seconds=60)[obj.object_id].status is ClaimStatus.CLAIMED


def test_large_batches_are_chunked_and_mixed_verdicts_are_sorted_out(aws: AwsWorld) -> None:
    store = claims(aws)
    objects = [SourceObject(LANDING, f"k{i}", etag=str(i)) for i in range(260)]
    done, held = objects[5], objects[150]
    store.claim([done], owner="X", lease_seconds=60)
    store.commit([done], owner="X", bundle_key="old")
    store.claim([held], owner="Y", lease_seconds=60)

    results = store.claim(objects, owner="Z", lease_seconds=60)
    assert results[done.object_id].status is ClaimStatus.DUPLICATE
    assert results[held.object_id].status is ClaimStatus.HELD
    claimed = [o for o in objects if results[o.object_id].status is ClaimStatus.CLAIMED]
    assert len(claimed) == 258

    store.commit(claimed, owner="Z", bundle_key="new")
    items = {i["ObjectID"]: i for i in aws.claim_items()}
    assert sum(1 for i in items.values() if i["status"] == "COMPLETED" and i["bundle_key"] == "new") == 258
    # Committed claims are nobody's to release: the fenced delete refuses every one of them.
    assert store.release(claimed, owner="Z") == {o.object_id for o in claimed}
    assert len(aws.claim_items()) == 260


# ------------------------------------------------------------------ fencing, intent, hand-over


def test_a_slow_owner_cannot_release_or_commit_a_newer_owners_claim(aws: AwsWorld) -> None:
    """A's lease expires, B takes over: A's late release and commit are refused and reported as lost."""
    clock = Clock()
    store = claims(aws, clock)
    obj = SourceObject(LANDING, "fenced", etag="e")
    store.claim([obj], owner="A", lease_seconds=60)
    clock.now += 61
    assert store.claim([obj], owner="B", lease_seconds=60)[obj.object_id].status is ClaimStatus.CLAIMED

    assert store.release([obj], owner="A") == {obj.object_id}
    assert store.commit([obj], owner="A", bundle_key="bundles/a.tar.gz") == {obj.object_id}
    assert store.hand_over([obj], owner="A") == {obj.object_id}
    assert store.record_intent([obj], owner="A", bundle_key="bundles/a.tar.gz") == {obj.object_id}
    item = aws.claim_item(obj.object_id)
    assert item is not None
    assert (item["owner"], item["status"]) == ("B", "IN_PROGRESS")
    assert "pending_bundle" not in item
    # A third invocation meets B's live lease, not a released claim.
    assert store.claim([obj], owner="C", lease_seconds=60)[obj.object_id].status is ClaimStatus.HELD
    assert store.commit([obj], owner="B", bundle_key="bundles/b.tar.gz") == set()


def test_a_takeover_inherits_the_bundle_its_previous_owner_was_publishing(aws: AwsWorld) -> None:
    clock = Clock()
    store = claims(aws, clock)
    obj = SourceObject(LANDING, "inherit", etag="e")
    store.claim([obj], owner="A", lease_seconds=60)
    assert store.record_intent([obj], owner="A", bundle_key="bundles/a.tar.gz") == set()
    # A live lease is still A's, whatever it recorded.
    assert store.claim([obj], owner="B", lease_seconds=60)[obj.object_id].status is ClaimStatus.HELD
    clock.now += 61
    result = store.claim([obj], owner="B", lease_seconds=60)[obj.object_id]
    assert (result.status, result.pending_bundle_key) == (ClaimStatus.CLAIMED, "bundles/a.tar.gz")
    assert store.commit([obj], owner="B", bundle_key="bundles/a.tar.gz") == set()
    item = aws.claim_item(obj.object_id)
    assert item is not None
    assert (item["status"], item["bundle_key"]) == ("COMPLETED", "bundles/a.tar.gz")
    assert "pending_bundle" not in item
    # Committing again (an answer lost the first time) is not a lost fence.
    assert store.commit([obj], owner="B", bundle_key="bundles/a.tar.gz") == set()


def test_hand_over_ends_the_lease_now_and_keeps_the_pending_bundle(aws: AwsWorld) -> None:
    clock = Clock()
    store = claims(aws, clock)
    obj = SourceObject(LANDING, "handed", etag="e")
    store.claim([obj], owner="A", lease_seconds=600)
    store.record_intent([obj], owner="A", bundle_key="bundles/a.tar.gz")
    assert store.hand_over([obj], owner="A") == set()
    result = store.claim([obj], owner="B", lease_seconds=60)[obj.object_id]
    assert (result.status, result.pending_bundle_key) == (ClaimStatus.CLAIMED, "bundles/a.tar.gz")


def test_two_takers_of_one_expired_claim_cannot_both_win(aws: AwsWorld) -> None:
    """The takeover is fenced on the owner it saw: the second taker finds the first one's live lease."""
    clock = Clock()
    store = claims(aws, clock)
    obj = SourceObject(LANDING, "contested", etag="e")
    store.claim([obj], owner="dead", lease_seconds=60)
    clock.now += 61
    assert store.claim([obj], owner="B", lease_seconds=60)[obj.object_id].status is ClaimStatus.CLAIMED
    assert store.claim([obj], owner="C", lease_seconds=60)[obj.object_id].status is ClaimStatus.HELD


def test_a_missing_table_fails_fast_naming_the_table(aws: AwsWorld) -> None:
    """ResourceNotFound can never succeed on retry: one call, one clear error, and the store stays shut."""
    calls: list[str] = []
    aws.dynamodb.meta.events.register("before-call.dynamodb", lambda **kw: calls.append(kw["model"].name))
    store = ClaimStore(aws.dynamodb, table="no-such-table", ttl_attribute="ttl", ttl_days=1, sleep=NO_SLEEP)
    obj = SourceObject(LANDING, "a", etag="1")
    result = store.claim([obj], owner="o", lease_seconds=60)[obj.object_id]
    assert result.status is ClaimStatus.ERROR
    assert isinstance(result.error, PermanentStoreError)
    assert not result.error.retryable
    assert "no-such-table" in str(result.error)
    assert "ResourceNotFoundException" in str(result.error)
    assert calls == ["TransactWriteItems"]
    with pytest.raises(PermanentStoreError):
        store.release([obj], owner="o")
    assert calls == ["TransactWriteItems"]


class ScriptedDynamo:
    """Answers TransactWriteItems from a script, to exercise conflicts moto never produces."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls: list[list[Any]] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs["TransactItems"])
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": c} for c in codes],
        },
        "TransactWriteItems",
    )


def test_transaction_conflicts_are_retried_for_the_undecided_items_only() -> None:
    a, b = SourceObject("l", "a", etag="1"), SourceObject("l", "b", etag="2")
    fake = ScriptedDynamo([cancelled("None", "TransactionConflict"), cancelled("TransactionConflict", "None"), {}])
    store = ClaimStore(fake, table="t", ttl_attribute="ttl", ttl_days=1, sleep=NO_SLEEP)  # type: ignore[arg-type]
    results = store.claim([a, b], owner="o", lease_seconds=60)
    assert {r.status for r in results.values()} == {ClaimStatus.CLAIMED}
    assert [len(call) for call in fake.calls] == [2, 2, 2]


@pytest.mark.parametrize(
    "code", ["ValidationException", "AccessDeniedException", "UnrecognizedClientException", "UnknownOperationException"]
)
def test_errors_no_retry_can_fix_are_not_retried(code: str) -> None:
    refused = ClientError({"Error": {"Code": code, "Message": "no"}}, "TransactWriteItems")
    fake = ScriptedDynamo([refused] * 5)
    store = ClaimStore(fake, table="t", ttl_attribute="ttl", ttl_days=1, sleep=NO_SLEEP)  # type: ignore[arg-type]
    obj = SourceObject("l", "a", etag="1")
    result = store.claim([obj], owner="o", lease_seconds=60)[obj.object_id]
    assert isinstance(result.error, PermanentStoreError)
    assert code in str(result.error)
    assert len(fake.calls) == 1


def test_a_table_that_stays_unavailable_gives_retryable_errors() -> None:
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")
    fake = ScriptedDynamo([throttled] * 5)
    store = ClaimStore(fake, table="t", ttl_attribute="ttl", ttl_days=1, sleep=NO_SLEEP)  # type: ignore[arg-type]
    obj = SourceObject("l", "a", etag="1")
    result = store.claim([obj], owner="o", lease_seconds=60)[obj.object_id]
    assert result.status is ClaimStatus.ERROR
    assert isinstance(result.error, ClaimStoreError)
    assert result.error.retryable
    assert "ThrottlingException" in str(result.error)


class ScriptedS3:
    """Answers PutObject from a script of exceptions (None = success)."""

    def __init__(self, script: list[Exception | None]) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        outcome = self.script.pop(0)
        if outcome is not None:
            raise outcome
        return {}


def s3_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("script", "calls", "fails"),
    [
        ([None], 1, False),
        ([s3_error("InternalError", 500), None], 2, False),
        ([s3_error("SlowDown", 503), s3_error("PreconditionFailed", 412)], 2, False),  # stored by attempt 1
        ([s3_error("InternalError", 500)] * 3, 3, True),
        ([s3_error("AccessDenied", 403)], 1, True),  # repeating cannot help
    ],
    ids=["stored", "repeated", "lost-answer", "gave-up", "denied"],
)
def test_publisher_repeats_only_what_may_clear_and_only_conditionally(
    script: list[Exception | None], calls: int, fails: bool
) -> None:
    fake = ScriptedS3(script)
    publisher = BundlePublisher(fake, multipart_threshold=5 * 1024 * 1024, sleep=NO_SLEEP)  # type: ignore[arg-type]
    bundle = make_bundle(100)
    if fails:
        with pytest.raises(UploadError):
            publisher.put("bucket", "key", bundle)
    else:
        publisher.put("bucket", "key", bundle)
    assert len(fake.calls) == calls
    assert all(call["IfNoneMatch"] == "*" for call in fake.calls)
