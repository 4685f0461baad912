"""An in-process moto world shaped like the dev deployment, plus helpers to drive the handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from data_aggregator import app
from data_aggregator.sandbox.context import LambdaContext
from e2e_tests.faults import FaultInjector, attached_to_handler
from tests.support import (
    ARCHIVE,
    BASE_ENV,
    DISTRIBUTION,
    EVENTS_QUEUE,
    LANDING,
    TABLE,
    read_bundle,
    s3_record,
    sha256_hex,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef


@dataclass
class AwsWorld:
    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient
    queue_url: str

    def upload(self, key: str, body: bytes, *, bucket: str = LANDING, **record_args: Any) -> dict[str, Any]:
        """PUT an object and return the notification record real S3 would send for it."""
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        version = response.get("VersionId")
        return s3_record(
            key,
            bucket=bucket,
            size=len(body),
            etag=response["ETag"].strip('"'),
            version_id=version if version and version != "null" else None,
            sequencer=record_args.pop("sequencer", None),
            **record_args,
        )

    def bundle_keys(self, bucket: str) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return sorted(obj["Key"] for page in paginator.paginate(Bucket=bucket) for obj in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def claim_item(self, object_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"ObjectID": {"S": object_id}}).get("Item")
        if not item:
            return None
        return {k: next(iter(v.values())) for k, v in item.items()}

    def claim_items(self) -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=TABLE)["Items"]
        return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]

    def delayed(self) -> int:
        """Messages sent back with a delay (deferred until a lease runs out), not receivable yet."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    def queued(self) -> list[MessageTypeDef]:
        """Every message waiting in the events queue (deferred ones included), taken out of it."""
        found: list[MessageTypeDef] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", []):
            found.extend(batch)
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return found


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, no_endpoint_override: None) -> Iterator[AwsWorld]:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    app._clients.cache_clear()
    with mock_aws():
        s3 = boto3.client("s3")
        dynamodb = boto3.client("dynamodb")
        for bucket in (LANDING, ARCHIVE, DISTRIBUTION):
            s3.create_bucket(Bucket=bucket)
        for bucket in (LANDING, ARCHIVE, DISTRIBUTION):  # as the Terraform baseline does
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]  # where deferred messages go back
        yield AwsWorld(s3=s3, dynamodb=dynamodb, sqs=sqs, queue_url=queue_url)
    app._clients.cache_clear()


def invoke(event: dict[str, Any], *, remaining_ms: int = 120_000) -> dict[str, Any]:
    # A frozen clock: the guard sees exactly ``remaining_ms`` whatever the test's own pace.
    context = LambdaContext(function_name="data-aggregator", timeout_seconds=remaining_ms / 1000, clock=lambda: 0.0)
    response: dict[str, Any] = app.handler(event, context)
    return response


def emitted_metrics(captured_out: str) -> dict[str, list[float]]:
    """Sum up the EMF blobs Powertools printed: metric name -> values."""
    values: dict[str, list[float]] = {}
    for line in captured_out.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                raw = blob[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(raw if isinstance(raw, list) else [raw])
    return values


@dataclass(frozen=True)
class PublishedFile:
    bundle_key: str
    member: str
    key: str
    data: bytes
    entry: dict[str, Any]


def published_files(aws: AwsWorld) -> list[PublishedFile]:
    """Every file in every Distribution bundle, after checking each bundle's invariants (SPEC §3, R5, R6)."""
    files: list[PublishedFile] = []
    distribution_keys = aws.bundle_keys(DISTRIBUTION)
    archive_keys = set(aws.bundle_keys(ARCHIVE))
    for key in distribution_keys:
        assert key.startswith("bundles/"), key
        assert key.endswith(".tar.gz"), key
        assert key in archive_keys, f"{key} is in Distribution but not in Archive"
        data = aws.read(DISTRIBUTION, key)
        assert aws.read(ARCHIVE, key) == data, f"{key}: Archive and Distribution copies differ"
        head = aws.s3.head_object(Bucket=DISTRIBUTION, Key=key)
        assert head["ContentType"] == "application/gzip"
        assert "ContentEncoding" not in head
        assert head["Metadata"]["content-sha256"] == sha256_hex(data)
        assert aws.s3.head_object(Bucket=ARCHIVE, Key=key)["Metadata"]["content-sha256"] == sha256_hex(data)
        bundle = read_bundle(data)
        assert bundle.order[-1] == "manifest.json"
        assert len(bundle.order) >= 2, f"{key} is an empty bundle"
        entries = bundle.manifest["files"]
        assert [e["member"] for e in entries] == bundle.order[:-1]
        assert key.endswith(bundle.manifest["bundle_id"] + ".tar.gz")
        for entry in entries:
            content = bundle.members[entry["member"]]
            assert entry["sha256"] == sha256_hex(content)
            assert entry["size"] == len(content)
            files.append(PublishedFile(key, entry["member"], entry["key"], content, entry))
    return files


def assert_each_exactly_once(aws: AwsWorld, expected: dict[str, bytes]) -> list[PublishedFile]:
    """Every expected key is published exactly once with its own bytes, and nothing else is."""
    files = published_files(aws)
    keys = [f.key for f in files]
    assert sorted(keys) == sorted(expected), "published keys differ from the uploaded ones"
    for f in files:
        assert f.data == expected[f.key], f"bytes of {f.key!r} differ"
    return files


@pytest.fixture
def faults() -> Iterator[FaultInjector]:
    """Faults attach to the handler's clients when they are created; add rules before invoking."""
    injector = FaultInjector(buckets={"landing": LANDING, "archive": ARCHIVE, "distribution": DISTRIBUTION})
    with attached_to_handler(injector):
        yield injector
    injector.close()


def expire_all_leases(aws: AwsWorld) -> None:
    """What the passing of time does to a dead invocation's claims."""
    for item in aws.dynamodb.scan(TableName=TABLE)["Items"]:
        if item["status"]["S"] == "IN_PROGRESS":
            aws.dynamodb.update_item(
                TableName=TABLE,
                Key={"ObjectID": item["ObjectID"]},
                UpdateExpression="SET lease_expires_at = :past",
                ExpressionAttributeValues={":past": {"N": "1"}},
            )


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything our loggers emitted, message and structured fields, as one searchable text."""
    skip = {"args", "exc_info", "exc_text", "stack_info", "msg"}
    return "\n".join(
        json.dumps({k: str(v) for k, v in vars(record).items() if k not in skip}) + " " + record.getMessage()
        for record in caplog.records
    )
