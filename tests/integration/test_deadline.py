"""The deadline is never overrun (issue: a stall shorter than botocore's read timeout).

Real stalls, not injected exceptions: a loopback proxy holds chosen S3 answers back for longer than the
function's timeout. The handler must still return before ``get_remaining_time_in_millis()`` reaches
zero, with exactly the affected messages failed, and the retry must deliver every file exactly once.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from data_aggregator import app
from data_aggregator.sandbox.context import LambdaContext
from tests.integration.conftest import AwsWorld, assert_each_exactly_once
from tests.integration.stall_proxy import StallProxy, StallRule
from tests.support import (
    ARCHIVE,
    BASE_ENV,
    DISTRIBUTION,
    EVENTS_QUEUE,
    LANDING,
    TABLE,
    failed_ids,
    notification,
    sqs_event,
    sqs_record,
)

FUNCTION_TIMEOUT_SECONDS = 10.0
STALL_SECONDS = 25.0  # longer than the function's timeout, shorter than botocore's 30 s read timeout


@pytest.fixture
def stalled_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsWorld, StallProxy]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    direct = f"http://{host}:{port}"
    # The server shares moto's in-process backends: start from an empty world.
    urllib.request.urlopen(urllib.request.Request(f"{direct}/moto-api/reset", method="POST"), timeout=10).close()  # noqa: S310 - loopback
    s3 = boto3.client("s3", endpoint_url=direct)
    dynamodb = boto3.client("dynamodb", endpoint_url=direct)
    sqs = boto3.client("sqs", endpoint_url=direct)
    queue_url = sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
    for bucket in (LANDING, ARCHIVE, DISTRIBUTION):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for name, value in {**BASE_ENV, "TIMEOUT_RESERVE_SECONDS": "3", "CLAIM_LEASE_SECONDS": "60"}.items():
        monkeypatch.setenv(name, value)
    with StallProxy(direct) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        app._clients.cache_clear()
        try:
            yield AwsWorld(s3=s3, dynamodb=dynamodb, sqs=sqs, queue_url=queue_url), proxy
        finally:
            app._clients.cache_clear()
            server.stop()


FILES = {f"deadline/{i}.bin": os.urandom(2_000) for i in range(5)}


def upload_batch(aws: AwsWorld) -> dict[str, Any]:
    return sqs_event(*(sqs_record(notification(aws.upload(key, body))) for key, body in FILES.items()))


def invoke_within(event: dict[str, Any]) -> tuple[dict[str, Any], LambdaContext]:
    context = LambdaContext(timeout_seconds=FUNCTION_TIMEOUT_SECONDS)
    response: dict[str, Any] = app.handler(event, context)
    return response, context


def not_acknowledged(aws: AwsWorld, event: dict[str, Any], response: dict[str, Any]) -> set[str]:
    """Messages that will come back: failed (SQS redelivers them) or deferred (sent to the queue again).

    A call the deadline cut short is the invocation's lack of time, not the message's fault: such a
    message is deferred rather than failed, and either way it is not acknowledged.
    """
    deferred_bodies = {message["Body"] for message in aws.queued()}
    deferred = {r["messageId"] for r in event["Records"] if r["body"] in deferred_bodies}
    return failed_ids(response) | deferred


def retry_delivers_everything(aws: AwsWorld, proxy: StallProxy, event: dict[str, Any]) -> None:
    proxy.rules.clear()
    response, context = invoke_within(event)
    assert response == {"batchItemFailures": []}
    assert not context.timed_out
    assert_each_exactly_once(aws, FILES)


def test_a_stalled_get_fails_its_message_before_the_deadline(stalled_world: tuple[AwsWorld, StallProxy]) -> None:
    aws, proxy = stalled_world
    event = upload_batch(aws)
    rule = StallRule("GET", f"/{LANDING}/deadline/2.bin", seconds=STALL_SECONDS, times=10)
    proxy.rules.append(rule)
    response, context = invoke_within(event)
    assert not context.timed_out, "the handler ran past its deadline"
    assert rule.stalled >= 1
    failed = not_acknowledged(aws, event, response)
    assert event["Records"][2]["messageId"] in failed
    # Whatever was acknowledged is published exactly once; nothing is half-done.
    acknowledged = {k for k, r in zip(FILES, event["Records"], strict=True) if r["messageId"] not in failed}
    assert_each_exactly_once(aws, {k: FILES[k] for k in acknowledged})
    retry_delivers_everything(aws, proxy, event)


def test_a_get_body_that_stops_mid_way_fails_before_the_deadline(
    stalled_world: tuple[AwsWorld, StallProxy],
) -> None:
    aws, proxy = stalled_world
    event = upload_batch(aws)
    rule = StallRule("GET", f"/{LANDING}/deadline/1.bin", stall="body", seconds=STALL_SECONDS, times=10)
    proxy.rules.append(rule)
    response, context = invoke_within(event)
    assert not context.timed_out, "the handler ran past its deadline"
    assert rule.stalled >= 1
    assert event["Records"][1]["messageId"] in not_acknowledged(aws, event, response)
    retry_delivers_everything(aws, proxy, event)


def test_a_stalled_distribution_write_fails_the_batch_before_the_deadline_and_is_completed_later(
    stalled_world: tuple[AwsWorld, StallProxy],
) -> None:
    aws, proxy = stalled_world
    event = upload_batch(aws)
    rule = StallRule("PUT", f"/{DISTRIBUTION}/", seconds=STALL_SECONDS, times=10)
    proxy.rules.append(rule)
    response, context = invoke_within(event)
    assert not context.timed_out, "the handler ran past its deadline"
    assert rule.stalled >= 1
    assert not_acknowledged(aws, event, response) == {r["messageId"] for r in event["Records"]}
    # The claims were handed over with their bundle, not deleted: the retry completes the same bundle.
    items = aws.claim_items()
    assert {(i["status"], int(i["lease_expires_at"])) for i in items} == {("IN_PROGRESS", 0)}
    (archived,) = aws.bundle_keys(ARCHIVE)
    retry_delivers_everything(aws, proxy, event)
    assert aws.bundle_keys(ARCHIVE) == [archived]
