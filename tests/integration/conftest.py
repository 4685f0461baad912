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
from tests.support import ARCHIVE, BASE_ENV, DISTRIBUTION, LANDING, TABLE, FakeLambdaContext, s3_record

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client


@dataclass
class AwsWorld:
    s3: S3Client
    dynamodb: DynamoDBClient

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
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def claim_items(self) -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=TABLE)["Items"]
        return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


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
        for bucket in (LANDING, ARCHIVE):
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
        yield AwsWorld(s3=s3, dynamodb=dynamodb)
    app._clients.cache_clear()


def invoke(event: dict[str, Any], *, remaining_ms: int = 120_000) -> dict[str, Any]:
    return app.handler(event, FakeLambdaContext(remaining_ms=remaining_ms))


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
