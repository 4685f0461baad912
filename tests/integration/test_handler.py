"""The Lambda handler end to end on moto: SPEC §5, row by row, plus bundle validity and splitting."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from data_aggregator import app
from data_aggregator.models import SourceObject
from tests.integration.conftest import (
    AwsWorld,
    assert_each_exactly_once,
    emitted_metrics,
    invoke,
    logged,
    published_files,
)
from tests.support import (
    ARCHIVE,
    DISTRIBUTION,
    LANDING,
    failed_ids,
    notification,
    s3_record,
    sqs_event,
    sqs_record,
)


def one_message_each(*records: dict[str, object]) -> dict[str, object]:
    return sqs_event(*(sqs_record(notification(r)) for r in records))


def test_a_batch_becomes_one_valid_bundle_in_both_buckets(aws: AwsWorld, tmp_path: Path) -> None:
    files = {f"in/{i:03}.jsonl": (json.dumps({"i": i}) + "\n").encode() * (i + 1) for i in range(30)}
    event = one_message_each(*(aws.upload(k, v) for k, v in files.items()))
    assert invoke(event) == {"batchItemFailures": []}
    published = assert_each_exactly_once(aws, files)
    assert len({f.bundle_key for f in published}) == 1
    assert [f.member for f in published] == list(files)  # batch order, keys kept as member names
    # tar(1) reads what we wrote.
    local = tmp_path / "bundle.tar.gz"
    local.write_bytes(aws.read(DISTRIBUTION, published[0].bundle_key))
    listing = subprocess.run(["tar", "-tzf", str(local)], capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines() == [*files, "manifest.json"]
    # The claims are COMPLETED with the bundle key.
    items = aws.claim_items()
    assert {i["status"] for i in items} == {"COMPLETED"}
    assert {i["bundle_key"] for i in items} == {published[0].bundle_key}


def test_bundle_key_layout_and_manifest_fields(aws: AwsWorld) -> None:
    record = aws.upload("k.txt", b"payload", sequencer="0055AED6DCD90281E5")
    invoke(one_message_each(record))
    (file,) = published_files(aws)
    assert file.bundle_key.count("/") == 5  # bundles/YYYY/MM/DD/HH/id.tar.gz
    assert file.entry["bucket"] == LANDING
    assert file.entry["key"] == "k.txt"
    assert file.entry["version_id"] == record["s3"]["object"]["versionId"]
    assert file.entry["etag"] == record["s3"]["object"]["eTag"]
    assert file.entry["event_time"] == record["eventTime"]


# ---------------------------------------------------------------- SPEC §5 rows


def test_s3_test_event_is_acknowledged_counted_and_writes_nothing(
    aws: AwsWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00Z", "Bucket": LANDING}
    )
    assert invoke(sqs_event(sqs_record(body))) == {"batchItemFailures": []}
    assert aws.bundle_keys(DISTRIBUTION) == aws.bundle_keys(ARCHIVE) == []
    assert emitted_metrics(capsys.readouterr().out)["TestEvents"] == [1.0]


@pytest.mark.parametrize(
    "poison",
    [
        "this is not json",
        '["a", "list"]',
        '{"no": "records"}',
        '{"Records": "not-a-list"}',
        '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}',
        '{"Records": [{"eventSource": "aws:kinesis", "eventName": "x", "s3": {}}]}',
    ],
)
def test_a_poisoned_message_fails_alone(aws: AwsWorld, poison: str, capsys: pytest.CaptureFixture[str]) -> None:
    good_before = aws.upload("before.txt", b"1")
    good_after = aws.upload("after.txt", b"2")
    bad = sqs_record(poison)
    event = sqs_event(sqs_record(notification(good_before)), bad, sqs_record(notification(good_after)))
    assert failed_ids(invoke(event)) == {bad["messageId"]}
    assert_each_exactly_once(aws, {"before.txt": b"1", "after.txt": b"2"})
    assert emitted_metrics(capsys.readouterr().out)["PoisonMessages"] == [1.0]


def test_a_message_with_good_and_bad_records_fails_but_its_good_files_are_bundled(aws: AwsWorld) -> None:
    good = aws.upload("good.txt", b"g")
    message = sqs_record(json.dumps({"Records": [good, {"eventSource": "aws:s3"}]}))
    assert failed_ids(invoke(sqs_event(message))) == {message["messageId"]}
    assert_each_exactly_once(aws, {"good.txt": b"g"})
    # The redelivered message only finds the good file done: nothing is bundled twice.
    assert failed_ids(invoke(sqs_event(message))) == {message["messageId"]}
    assert_each_exactly_once(aws, {"good.txt": b"g"})


def test_non_object_created_events_are_acknowledged_and_ignored(aws: AwsWorld) -> None:
    removed = s3_record("gone.txt", event_name="ObjectRemoved:Delete")
    restored = s3_record("cold.txt", event_name="ObjectRestore:Completed")
    assert invoke(one_message_each(removed, restored)) == {"batchItemFailures": []}
    assert aws.bundle_keys(DISTRIBUTION) == []


ODD_KEYS = [
    "with space.txt",
    "plus+sign.txt",
    "percent%20literal%.txt",
    "ünïcødé/文件/😀.txt",
    "double//slash.txt",
    "../../etc/passwd",
    "/leading/slash.txt",
    "a/./b/../c.txt",
    "tab\there.txt",
    "manifest.json",
    "k" * 1024,
    "dir/" + "é" * 500,  # 1004 bytes, one segment far beyond NAME_MAX
]


@pytest.mark.parametrize("encode_slash", [False, True], ids=["real-s3-encoding", "emulator-encoding"])
def test_odd_keys_are_fetched_and_get_safe_names_with_the_original_in_the_manifest(
    aws: AwsWorld, encode_slash: bool, tmp_path: Path
) -> None:
    files = {key: f"content of {key!r}".encode() for key in ODD_KEYS}
    event = one_message_each(*(aws.upload(k, v, encode_slash=encode_slash) for k, v in files.items()))
    assert invoke(event) == {"batchItemFailures": []}
    published = assert_each_exactly_once(aws, files)
    members = [f.member for f in published]
    assert len(set(members)) == len(members)
    for f in published:
        assert not f.member.startswith("/")
        assert ".." not in f.member.split("/")
        assert "\t" not in f.member
    assert next(f.member for f in published if f.key == "with space.txt") == "with space.txt"
    # Extracting with tar(1) keeps everything inside the target directory.
    local = tmp_path / "b.tar.gz"
    local.write_bytes(aws.read(DISTRIBUTION, published[0].bundle_key))
    target = tmp_path / "out"
    target.mkdir()
    subprocess.run(["tar", "-xzf", str(local), "-C", str(target)], check=True)
    extracted = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert extracted == {*members, "manifest.json"}


def test_keys_from_real_moto_notifications(aws: AwsWorld) -> None:
    """The emulator's own events (via SQS) carry %2F keys and no sequencer; they must work as sent."""
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.s3.put_bucket_notification_configuration(
        Bucket=LANDING,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    files = {"a b/c+d%e/ü.txt": b"one", "x/y/z.bin": os.urandom(100)}
    for key, data in files.items():
        aws.s3.put_object(Bucket=LANDING, Key=key, Body=data)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert any("s3:TestEvent" in m["Body"] for m in messages)
    event = sqs_event(*(sqs_record(m["Body"], message_id=m["MessageId"]) for m in messages))
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, files)


def test_same_object_twice_in_one_batch_is_bundled_once(aws: AwsWorld, capsys: pytest.CaptureFixture[str]) -> None:
    record = aws.upload("dup.txt", b"once")
    first, second = sqs_record(notification(record)), sqs_record(notification(record))
    assert invoke(sqs_event(first, second)) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, {"dup.txt": b"once"})
    assert emitted_metrics(capsys.readouterr().out)["DuplicatesSkipped"] == [1.0]


def test_same_object_in_two_batches_is_bundled_once(aws: AwsWorld, capsys: pytest.CaptureFixture[str]) -> None:
    record = aws.upload("dup.txt", b"once")
    assert invoke(one_message_each(record)) == {"batchItemFailures": []}
    capsys.readouterr()
    assert invoke(one_message_each(record)) == {"batchItemFailures": []}  # a different messageId, same object
    assert_each_exactly_once(aws, {"dup.txt": b"once"})
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["DuplicatesSkipped"] == [1.0]
    assert metrics["BundlesWritten"] == [0.0]


def test_multipart_upload_double_notification_is_bundled_once(aws: AwsWorld) -> None:
    record = aws.upload("mpu.bin", b"x" * 100)
    complete = json.loads(json.dumps(record))
    complete["eventName"] = "ObjectCreated:CompleteMultipartUpload"
    assert invoke(one_message_each(record, complete)) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, {"mpu.bin": b"x" * 100})


def test_deleted_before_fetch_is_acknowledged_counted_and_never_an_empty_bundle(
    aws: AwsWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = aws.upload("gone.txt", b"bye")
    aws.s3.delete_object(Bucket=LANDING, Key="gone.txt", VersionId=gone["s3"]["object"]["versionId"])
    assert invoke(one_message_each(gone)) == {"batchItemFailures": []}
    assert aws.bundle_keys(DISTRIBUTION) == []
    assert emitted_metrics(capsys.readouterr().out)["ObjectsMissing"] == [1.0]
    assert aws.claim_items() == []  # released: a later notification could still bundle it


def test_missing_object_among_others(aws: AwsWorld) -> None:
    kept = aws.upload("kept.txt", b"k")
    gone = aws.upload("gone.txt", b"g")
    aws.s3.delete_object(Bucket=LANDING, Key="gone.txt", VersionId=gone["s3"]["object"]["versionId"])
    assert invoke(one_message_each(kept, gone)) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, {"kept.txt": b"k"})


def test_zero_byte_object_is_an_empty_member(aws: AwsWorld) -> None:
    assert invoke(one_message_each(aws.upload("empty.dat", b""), aws.upload("full.dat", b"f"))) == {
        "batchItemFailures": []
    }
    files = assert_each_exactly_once(aws, {"empty.dat": b"", "full.dat": b"f"})
    assert next(f for f in files if f.key == "empty.dat").entry["size"] == 0


def test_object_above_the_maximum_fails_alone_with_a_clear_error(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAX_OBJECT_BYTES", "1000")
    big = sqs_record(notification(aws.upload("big.bin", b"x" * 2000)))
    sneaky = aws.upload("sneaky.bin", b"y" * 3000)
    del sneaky["s3"]["object"]["size"]  # no size in the event: caught when the GET reports it
    sneaky_message = sqs_record(notification(sneaky))
    small = sqs_record(notification(aws.upload("small.bin", b"z" * 10)))
    assert failed_ids(invoke(sqs_event(big, sneaky_message, small))) == {big["messageId"], sneaky_message["messageId"]}
    assert_each_exactly_once(aws, {"small.bin": b"z" * 10})
    assert emitted_metrics(capsys.readouterr().out)["ObjectsTooLarge"] == [2.0]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    for record in errors:
        assert "dead-letter queue" in record.getMessage()
        assert "above MAX_OBJECT_BYTES=1000" in record.error  # type: ignore[attr-defined]
        assert record.retryable is False  # type: ignore[attr-defined]


def test_versioned_overwrite_delivers_each_version_with_its_own_bytes(aws: AwsWorld) -> None:
    v1 = aws.upload("report.csv", b"first draft")
    v2 = aws.upload("report.csv", b"final version")
    assert invoke(one_message_each(v1, v2)) == {"batchItemFailures": []}
    files = published_files(aws)
    assert sorted(f.data for f in files) == [b"final version", b"first draft"]
    assert len({f.member for f in files}) == 2


def test_versioned_overwrite_with_emulator_events_lacking_version_ids(aws: AwsWorld) -> None:
    v1, v2 = aws.upload("r.csv", b"one"), aws.upload("r.csv", b"two")
    for record in (v1, v2):
        del record["s3"]["object"]["versionId"]
    assert invoke(one_message_each(v1, v2)) == {"batchItemFailures": []}
    assert sorted(f.data for f in published_files(aws)) == [b"one", b"two"]


def test_limits_split_a_batch_into_several_bundles_with_every_file_once(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_FILES_PER_BUNDLE", "7")
    monkeypatch.setenv("MAX_BUNDLE_INPUT_BYTES", "3000")
    files = {f"f{i:02}": os.urandom(100 if i % 5 else 1500) for i in range(40)}
    assert invoke(one_message_each(*(aws.upload(k, v) for k, v in files.items()))) == {"batchItemFailures": []}
    published = assert_each_exactly_once(aws, files)
    by_bundle: dict[str, list[int]] = {}
    for f in published:
        by_bundle.setdefault(f.bundle_key, []).append(f.entry["size"])
    assert len(by_bundle) > 5
    for sizes in by_bundle.values():
        assert len(sizes) <= 7
        assert sum(sizes) <= 3000 or len(sizes) == 1


def test_records_retried_counts_redeliveries(aws: AwsWorld, capsys: pytest.CaptureFixture[str]) -> None:
    record = sqs_record(notification(aws.upload("r.txt", b"r")), receive_count=3)
    invoke(sqs_event(record))
    assert emitted_metrics(capsys.readouterr().out)["RecordsRetried"] == [1.0]


def test_missing_configuration_fails_fast_naming_the_variable(aws: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    from data_aggregator.errors import ConfigError

    with pytest.raises(ConfigError, match="IDEMPOTENCY_TABLE_NAME: Field required"):
        invoke(one_message_each(s3_record("k")))


def test_logs_never_contain_file_content(aws: AwsWorld, caplog: pytest.LogCaptureFixture) -> None:
    secret = b"TOP-SECRET-PAYLOAD-4711"
    gone = aws.upload("gone.txt", secret)
    aws.s3.delete_object(Bucket=LANDING, Key="gone.txt", VersionId=gone["s3"]["object"]["versionId"])
    invoke(one_message_each(aws.upload("secret.txt", secret), gone))
    text = logged(caplog)
    assert "bundle published" in text
    assert "gone.txt" in text  # keys are logged
    assert secret.decode() not in text


def test_identity_matches_what_the_table_holds(aws: AwsWorld) -> None:
    record = aws.upload("id.txt", b"1")
    invoke(one_message_each(record))
    obj = SourceObject(LANDING, "id.txt", version_id=record["s3"]["object"]["versionId"])
    item = aws.claim_item(obj.object_id)
    assert item is not None
    assert item["status"] == "COMPLETED"


# ---------------------------------------------------------------- identity and integrity


def test_a_reused_sequencer_still_tells_two_writes_of_one_key_apart(aws: AwsWorld) -> None:
    """An S3 implementation that gives every event the same sequencer (and no versionId, unversioned
    bucket): the eTag keeps the two writes distinct, and the newest bytes are bundled."""
    aws.s3.create_bucket(Bucket="unversioned-landing")
    first = aws.upload("same.txt", b"first write", bucket="unversioned-landing", sequencer="0000000000000001")
    newest = b"second write, newer bytes"
    second = aws.upload("same.txt", newest, bucket="unversioned-landing", sequencer="0000000000000001")
    # The first write is gone from an unversioned bucket: acknowledged as missing; the second is bundled.
    event = one_message_each(first, second)
    assert invoke(event) == {"batchItemFailures": []}
    (file,) = published_files(aws)
    assert file.data == newest  # with the sequencer alone both events were one object: nothing was bundled


def test_a_pinned_get_whose_size_differs_from_the_event_fails_that_message(
    aws: AwsWorld, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    good = aws.upload("good.txt", b"fine")
    liar = aws.upload("liar.txt", b"twelve bytes")
    liar["s3"]["object"]["size"] = 99  # the event and the version it names disagree
    event = one_message_each(good, liar)
    records: list[dict[str, str]] = event["Records"]  # type: ignore[assignment]
    assert failed_ids(invoke(event)) == {records[1]["messageId"]}
    assert [f.key for f in published_files(aws)] == ["good.txt"]
    assert emitted_metrics(capsys.readouterr().out)["SizeMismatches"] == [1.0]
    assert "liar.txt" in logged(caplog)
    assert "announced 99" in logged(caplog)


def test_two_invocations_side_by_side_each_report_their_own_failures(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda runs one invocation per process, but the sandbox runs several pollers in one: the
    batch verdicts must not be shared, or one invocation's failures vanish and its messages are
    deleted unprocessed."""
    both_inside = threading.Barrier(2, timeout=10)
    real_verdict = app._verdict

    def meeting_verdict(report: Any, record: Any) -> None:
        both_inside.wait()  # each invocation has prepared its batch and is judging its first record
        real_verdict(report, record)

    monkeypatch.setattr(app, "_verdict", meeting_verdict)
    poison = sqs_event(sqs_record("not json"))
    test_event = sqs_event(sqs_record(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": LANDING})))
    responses: dict[str, dict[str, Any]] = {}

    def run(name: str, event: dict[str, Any]) -> None:
        responses[name] = invoke(event)

    threads = [
        threading.Thread(target=run, args=("poison", poison)),
        threading.Thread(target=run, args=("test", test_event)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert responses["test"] == {"batchItemFailures": []}
    assert failed_ids(responses["poison"]) == {poison["Records"][0]["messageId"]}


def test_outside_lambda_no_clients_are_built_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    built: list[object] = []
    monkeypatch.setattr(app, "_clients_for", built.append)
    app._prepare_during_init()
    assert built == []  # tests and the sandbox build theirs once moto or the emulator is up


def test_inside_lambda_init_builds_the_clients_the_first_invocation_uses(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "data-aggregator")
    app._clients.cache_clear()
    app._prepare_during_init()
    assert app._clients.cache_info().currsize == 1
    invoke(one_message_each(aws.upload("warm.txt", b"w")))
    # The invocation found the clients init built: same key, no second set.
    assert app._clients.cache_info().currsize == 1
    assert app._clients.cache_info().hits == 1


def test_a_bad_setting_at_init_is_still_reported_by_the_invocation(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "data-aggregator")
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME")
    from data_aggregator.errors import ConfigError

    app._prepare_during_init()  # does not raise: init must not turn a setting into a crash loop
    with pytest.raises(ConfigError, match="IDEMPOTENCY_TABLE_NAME: Field required"):
        invoke(one_message_each(s3_record("k")))
