"""The handler on moto with every notification path: SNS envelopes and EventBridge events (SPEC §5).

The point of the EventBridge tests is the key: EventBridge sends it as stored, S3 notifications send it
form-encoded. A decoy object sits at the key that decoding would produce, so a parser that decoded
EventBridge keys would publish the decoy's bytes instead of failing quietly with NoSuchKey.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.integration.conftest import AwsWorld, assert_each_exactly_once, emitted_metrics, invoke
from tests.support import LANDING, failed_ids, notification, sqs_event, sqs_record

# '+' and '%2B' mean different things once decoded; '%' alone is not a valid escape at all.
PLUS_AND_PERCENT = "in/a+b%2Bc 100%/ü €.txt"
DECOY = "in/a b+c 100%/ü €.txt"  # what unquote_plus makes of PLUS_AND_PERCENT
AWKWARD = {
    PLUS_AND_PERCENT: b"the right bytes",
    "x/with space/and+plus.csv": b"two",
    "x/100%25 literal.csv": b"three",
    "ünïcødé/文件/😀.json": b"four",
}


def eventbridge_body(upload: dict[str, Any], *, detail_type: str = "Object Created") -> str:
    """An S3 event as EventBridge delivers it to SQS: the key exactly as stored."""
    return json.dumps(
        {
            "version": "0",
            "id": "7d6c1a52-2f0b-4c3e-8a5d-1e9f0b2c3d4e",
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-27T10:00:00Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{LANDING}"],
            "detail": {
                "version": "0",
                "bucket": {"name": LANDING},
                "object": {
                    "key": upload["key"],
                    "size": upload["size"],
                    "etag": upload["etag"],
                    "version-id": upload["version_id"],
                    "sequencer": "00617F08299329D189",
                },
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "reason": "PutObject",
            },
        }
    )


def sns_body(message: str) -> str:
    """What SQS receives from an SNS subscription without raw message delivery."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "5e1f8f0c-7a9b-5d2e-9c4f-3b2a1d0e9f8c",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:landing-fanout",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2026-11-27T10:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def put(aws: AwsWorld, key: str, body: bytes) -> dict[str, Any]:
    response = aws.s3.put_object(Bucket=LANDING, Key=key, Body=body)
    return {"key": key, "size": len(body), "etag": response["ETag"].strip('"'), "version_id": response["VersionId"]}


def test_an_eventbridge_key_with_plus_and_percent_is_fetched_as_stored(aws: AwsWorld) -> None:
    upload = put(aws, PLUS_AND_PERCENT, b"the right bytes")
    put(aws, DECOY, b"the decoy's bytes")
    assert invoke(sqs_event(sqs_record(eventbridge_body(upload)))) == {"batchItemFailures": []}
    (published,) = assert_each_exactly_once(aws, {PLUS_AND_PERCENT: b"the right bytes"})
    assert published.entry["version_id"] == upload["version_id"]
    assert published.entry["etag"] == upload["etag"]
    assert published.entry["event_time"] == "2026-11-27T10:00:00Z"


def test_an_sns_wrapped_notification_keeps_its_form_encoded_key(aws: AwsWorld) -> None:
    record = aws.upload(PLUS_AND_PERCENT, b"the right bytes", sequencer="00AB")
    put(aws, DECOY, b"the decoy's bytes")
    assert invoke(sqs_event(sqs_record(sns_body(notification(record))))) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, {PLUS_AND_PERCENT: b"the right bytes"})


def test_one_write_announced_on_every_path_is_bundled_once(aws: AwsWorld) -> None:
    """Someone routing S3 events both ways at once gets each object once: identity ignores the path."""
    record = aws.upload(PLUS_AND_PERCENT, b"once")
    upload = {
        "key": PLUS_AND_PERCENT,
        "size": 4,
        "etag": record["s3"]["object"]["eTag"],
        "version_id": record["s3"]["object"]["versionId"],
    }
    bodies = [notification(record), sns_body(notification(record)), eventbridge_body(upload)]
    assert invoke(sqs_event(*(sqs_record(body) for body in bodies))) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, {PLUS_AND_PERCENT: b"once"})


def test_unusable_envelopes_fail_alone_and_other_s3_events_are_acknowledged(
    aws: AwsWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    good = put(aws, "good.txt", b"g")
    alarm = sns_body(json.dumps({"AlarmName": "landing-backlog", "NewStateValue": "ALARM"}))
    no_key = json.loads(eventbridge_body(good))
    del no_key["detail"]["object"]["key"]
    poison = [sqs_record(alarm), sqs_record(json.dumps(no_key))]
    deleted = sqs_record(eventbridge_body(good, detail_type="Object Deleted"))
    test_event = sqs_record(sns_body(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": LANDING})))
    event = sqs_event(poison[0], sqs_record(eventbridge_body(good)), deleted, test_event, poison[1])
    assert failed_ids(invoke(event)) == {record["messageId"] for record in poison}
    assert_each_exactly_once(aws, {"good.txt": b"g"})
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["PoisonMessages"] == [2.0]
    assert metrics["RecordsIgnored"] == [1.0]
    assert metrics["TestEvents"] == [1.0]


def test_moto_s3_to_sns_to_sqs_without_raw_delivery(aws: AwsWorld, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = boto3.client("sqs")
    sns: Any = boto3.client("sns")  # no type stubs for SNS in the lock
    queue = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name="landing-fanout")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
    aws.s3.put_bucket_notification_configuration(
        Bucket=LANDING,
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    for key, data in AWKWARD.items():
        aws.s3.put_object(Bucket=LANDING, Key=key, Body=data)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert all(json.loads(m["Body"])["Type"] == "Notification" for m in messages)
    event = sqs_event(*(sqs_record(m["Body"], message_id=m["MessageId"]) for m in messages))
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, AWKWARD)
    assert emitted_metrics(capsys.readouterr().out)["TestEvents"] == [1.0]  # sent when the topic was configured


def test_moto_s3_to_eventbridge_to_sqs(aws: AwsWorld) -> None:
    sqs = boto3.client("sqs")
    events: Any = boto3.client("events")  # no type stubs for EventBridge in the lock
    queue = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [LANDING]}}}
    events.put_rule(Name="landing-created", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="landing-created", Targets=[{"Id": "queue", "Arn": queue_arn}])
    aws.s3.put_bucket_notification_configuration(
        Bucket=LANDING, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    for key, data in AWKWARD.items():
        aws.s3.put_object(Bucket=LANDING, Key=key, Body=data)
    aws.s3.put_object(Bucket=LANDING, Key=DECOY, Body=b"the decoy's bytes")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    chosen = [m for m in messages if json.loads(m["Body"])["detail"]["object"]["key"] in AWKWARD]
    assert len(chosen) == len(AWKWARD)
    event = sqs_event(*(sqs_record(m["Body"], message_id=m["MessageId"]) for m in chosen))
    assert invoke(event) == {"batchItemFailures": []}
    assert_each_exactly_once(aws, AWKWARD)
