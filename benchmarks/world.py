"""An in-process moto world shaped like a deployment, and event builders, for the benchmarks.

The test suite has its own fixtures; benchmarks keep theirs so that they run from a plain checkout
without pytest, and so that changing a test helper can never silently change a published figure.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from unittest import mock
from urllib.parse import quote_plus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client

LANDING = "bench-landing"
ARCHIVE = "bench-archive"
DISTRIBUTION = "bench-distribution"
TABLE = "bench-claims"

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # the emulator's dummy credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "ARCHIVE_BUCKET_NAME": ARCHIVE,
    "DISTRIBUTION_BUCKET_NAME": DISTRIBUTION,
    "IDEMPOTENCY_TABLE_NAME": TABLE,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class MotoWorld:
    s3: S3Client
    dynamodb: DynamoDBClient
    calls: dict[str, int] = field(default_factory=dict)

    def count_calls(self, client: Any) -> None:  # noqa: ANN401 - any botocore client
        """Count API calls per operation on ``client`` (retries excluded: they do not occur on moto)."""

        def counted(model: Any, **_: object) -> None:  # noqa: ANN401 - botocore's OperationModel
            self.calls[model.name] = self.calls.get(model.name, 0) + 1

        client.meta.events.register("before-call", counted)

    def reset_table(self) -> None:
        """A fresh claims table, so every run claims new objects instead of finding duplicates."""
        existing = self.dynamodb.list_tables()["TableNames"]
        if TABLE in existing:
            self.dynamodb.delete_table(TableName=TABLE)
        self.dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """PUT an object into Landing and return the notification record S3 would send for it."""
        response = self.s3.put_object(Bucket=LANDING, Key=key, Body=body)
        version = response.get("VersionId")
        obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": len(body), "eTag": response["ETag"].strip('"')}
        if version and version != "null":
            obj["versionId"] = version
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": LANDING, "arn": f"arn:aws:s3:::{LANDING}"},
                "object": obj,
            },
        }


@contextmanager
def offline_env() -> Iterator[None]:
    """Dummy credentials and the function's settings, restoring the caller's environment afterwards."""
    with mock.patch.dict(os.environ, ENV):
        os.environ.pop("AWS_ENDPOINT_URL", None)
        os.environ.pop("AWS_PROFILE", None)
        yield


@contextmanager
def moto_world(*, max_pool_connections: int = 64) -> Iterator[MotoWorld]:
    """Landing (versioned), Archive (versioned), Distribution and the claims table, in-process."""
    from moto import mock_aws

    from data_aggregator.clients import make_clients

    with offline_env(), mock_aws():
        clients = make_clients(max_pool_connections=max_pool_connections)
        yield provisioned_world(clients.s3, clients.dynamodb)


def provisioned_world(s3: S3Client, dynamodb: DynamoDBClient) -> MotoWorld:
    """The three buckets (Landing and Archive versioned) and a fresh claims table on these clients."""
    for bucket in (LANDING, ARCHIVE, DISTRIBUTION):
        s3.create_bucket(Bucket=bucket)
    for bucket in (LANDING, ARCHIVE):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    world = MotoWorld(s3=s3, dynamodb=dynamodb)
    world.reset_table()
    return world


def sqs_record(body: str) -> dict[str, Any]:
    """An SQS message as the event source mapping delivers it to the function."""
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795000000000",
            "SenderId": "AIDABENCH",
            "ApproximateFirstReceiveTimestamp": "1795000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-events",
        "awsRegion": "us-east-1",
    }


def notification(record: dict[str, Any]) -> str:
    return json.dumps({"Records": [record]})
