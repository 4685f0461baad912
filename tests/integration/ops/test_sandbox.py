"""Provisioning and the event source mapping emulator against moto's real SQS semantics."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from data_aggregator.events import parse_message
from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.esm import EventSourceMapping, MappingSettings
from data_aggregator.sandbox.provision import (
    Environment,
    NotificationPath,
    QueueSettings,
    ResourceNames,
    provision,
    queue_depth,
)
from tests.integration.ops.conftest import unique


def make_environment(clients: Clients, visibility_timeout: int) -> Environment:
    return provision(
        clients,
        ResourceNames.for_environment(unique("t")),
        QueueSettings(visibility_timeout=visibility_timeout, max_receive_count=2),
    )


@pytest.fixture
def environment(clients: Clients) -> Environment:
    """Visibility well above any batching window here, so no message comes back mid-test."""
    return make_environment(clients, visibility_timeout=30)


def drain_test_event(clients: Clients, environment: Environment) -> None:
    for message in clients.sqs.receive_message(QueueUrl=environment.queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        clients.sqs.delete_message(QueueUrl=environment.queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_provisioning_creates_what_the_handler_and_esm_need(clients: Clients, environment: Environment) -> None:
    names = environment.names
    s3, sqs, dynamodb = clients.s3, clients.sqs, clients.dynamodb
    assert s3.get_bucket_versioning(Bucket=names.archive)["Status"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=names.distribution)["Status"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=names.landing)["Status"] == "Enabled"
    attributes = sqs.get_queue_attributes(QueueUrl=environment.queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == environment.dlq_arn
    assert int(redrive["maxReceiveCount"]) == 2
    assert attributes["VisibilityTimeout"] == "30"
    assert attributes["MessageRetentionPeriod"] == str(4 * 24 * 3600)
    table = dynamodb.describe_table(TableName=names.table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "ObjectID", "KeyType": "HASH"}]
    ttl = dynamodb.describe_time_to_live(TableName=names.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "ttl"
    assert environment.handler_environment() == {
        "ARCHIVE_BUCKET_NAME": names.archive,
        "DISTRIBUTION_BUCKET_NAME": names.distribution,
        "IDEMPOTENCY_TABLE_NAME": names.table,
    }

    s3.put_object(Bucket=names.landing, Key="a b/c.json", Body=b"{}")
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=environment.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)[
            "Messages"
        ]
    ]
    assert bodies[0]["Event"] == "s3:TestEvent"
    assert bodies[1]["Records"][0]["s3"]["object"]["key"] in ("a+b/c.json", "a+b%2Fc.json")

    again = provision(clients, names, QueueSettings(visibility_timeout=30, max_receive_count=2))
    assert again.queue_url == environment.queue_url


def send(clients: Clients, environment: Environment, bodies: list[str]) -> None:
    for body in bodies:
        clients.sqs.send_message(QueueUrl=environment.queue_url, MessageBody=body)


def test_batches_fill_to_the_batch_size_and_acknowledged_messages_are_deleted(
    clients: Clients, environment: Environment
) -> None:
    drain_test_event(clients, environment)
    send(clients, environment, [json.dumps({"n": i}) for i in range(25)])
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(
            {
                "event": event,
                "remaining": context.get_remaining_time_in_millis(),
                "id": context.aws_request_id,
            }
        )
        return {"batchItemFailures": []}

    esm = EventSourceMapping(
        clients.sqs,
        environment.queue_url,
        environment.queue_arn,
        handler,
        MappingSettings(batch_size=20, batching_window_seconds=1, function_timeout_seconds=30),
    )
    first = esm.poll_once()
    assert first is not None
    assert len(first.message_ids) == 20
    record = seen[0]["event"]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == environment.queue_arn
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert 0 < seen[0]["remaining"] <= 30_000
    second = esm.poll_once()
    assert second is not None
    assert len(second.message_ids) == 5
    assert queue_depth(clients, environment.queue_url) == (0, 0)
    assert esm.stats.acknowledged == 25


def test_failed_messages_return_and_are_redriven_to_the_dlq(clients: Clients) -> None:
    environment = make_environment(clients, visibility_timeout=1)
    drain_test_event(clients, environment)
    send(clients, environment, ["poison", "fine-1", "fine-2"])
    receive_counts: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failed = []
        for record in event["Records"]:
            if record["body"] == "poison":
                receive_counts.append(record["attributes"]["ApproximateReceiveCount"])
                failed.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failed}

    esm = EventSourceMapping(
        clients.sqs,
        environment.queue_url,
        environment.queue_arn,
        handler,
        MappingSettings(batch_size=10, batching_window_seconds=0, idle_wait_seconds=2),
    )
    for _ in range(6):
        esm.poll_once()
        if queue_depth(clients, environment.dlq_url)[0] == 1:
            break
    assert queue_depth(clients, environment.dlq_url) == (1, 0)
    assert queue_depth(clients, environment.queue_url) == (0, 0)
    assert receive_counts == ["1", "2"]
    dead = clients.sqs.receive_message(QueueUrl=environment.dlq_url)["Messages"][0]
    assert dead["Body"] == "poison"


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [("raise", "RuntimeError: boom"), ("invalid", "invalid batch response"), ("timeout", "timed out")],
)
def test_whole_batch_fails_when_lambda_would_fail_it(
    clients: Clients, environment: Environment, behaviour: str, error: str
) -> None:
    drain_test_event(clients, environment)
    send(clients, environment, ["a", "b", "c"])
    now = [1000.0]

    def handler(event: dict[str, Any], context: Any) -> Any:
        if behaviour == "raise":
            raise RuntimeError("boom")
        if behaviour == "timeout":
            now[0] += 31
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    esm = EventSourceMapping(
        clients.sqs,
        environment.queue_url,
        environment.queue_arn,
        handler,
        MappingSettings(batch_size=10, batching_window_seconds=0, function_timeout_seconds=30),
        clock=lambda: now[0],
    )
    invocation = esm.poll_once()
    assert invocation is not None
    assert invocation.error is not None
    assert error in invocation.error
    assert len(invocation.failed_ids) == 3
    assert queue_depth(clients, environment.queue_url)[1] == 3  # all still in flight, none deleted
    assert esm.stats.errors == 1


def test_background_pollers_start_and_stop(clients: Clients, environment: Environment) -> None:
    drain_test_event(clients, environment)
    send(clients, environment, ["x"] * 4)
    received: list[int] = []
    esm = EventSourceMapping(
        clients.sqs,
        environment.queue_url,
        environment.queue_arn,
        lambda event, _context: received.append(len(event["Records"])),
        MappingSettings(batch_size=10, batching_window_seconds=0, idle_wait_seconds=1),
    )
    esm.start(pollers=2)
    for _ in range(50):
        if sum(received) == 4:
            break
        time.sleep(0.1)
    esm.stop()
    assert sum(received) == 4
    assert queue_depth(clients, environment.queue_url) == (0, 0)


@pytest.mark.parametrize("path", ["sns", "eventbridge"])
def test_each_notification_path_delivers_its_own_shape_with_the_key_intact(
    clients: Clients, path: NotificationPath
) -> None:
    names = ResourceNames.for_environment(unique(path[:3]))
    settings = QueueSettings(visibility_timeout=30, max_receive_count=2)
    environment = provision(clients, names, settings, notification_path=path)
    assert environment.notification_path == path
    key = "a+b%2Bc 100%/ü €.json"
    clients.s3.put_object(Bucket=names.landing, Key=key, Body=b"{}")
    bodies = [
        m["Body"]
        for m in clients.sqs.receive_message(QueueUrl=environment.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)[
            "Messages"
        ]
    ]
    shapes = [json.loads(body) for body in bodies]
    parsed = [parse_message(body) for body in bodies]
    if path == "sns":
        assert all(shape["Type"] == "Notification" and shape["TopicArn"] == environment.topic_arn for shape in shapes)
        assert [p.is_test_event for p in parsed] == [True, False]  # S3's test event travels through the topic
        assert json.loads(shapes[1]["Message"])["Records"][0]["s3"]["object"]["key"] != key  # still form-encoded
    else:
        assert [(shape["source"], shape["detail-type"]) for shape in shapes] == [("aws.s3", "Object Created")]
        assert shapes[0]["detail"]["object"]["key"] == key  # as stored
        policy = json.loads(
            clients.sqs.get_queue_attributes(QueueUrl=environment.queue_url, AttributeNames=["Policy"])["Attributes"][
                "Policy"
            ]
        )
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == environment.rule_arn
    assert [obj.key for p in parsed for obj in p.objects] == [key]

    again = provision(clients, names, settings, notification_path=path)
    clients.s3.put_object(Bucket=names.landing, Key="second.json", Body=b"{}")
    later = clients.sqs.receive_message(QueueUrl=again.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    created = [obj.key for m in later["Messages"] for obj in parse_message(m["Body"]).objects]
    assert created == ["second.json"]  # provisioning twice does not subscribe the queue twice


def test_an_unknown_notification_path_is_refused(clients: Clients) -> None:
    with pytest.raises(ValueError, match="notification path must be one of direct, sns, eventbridge"):
        provision(clients, ResourceNames.for_environment(unique("x")), notification_path="kinesis")  # type: ignore[arg-type]
