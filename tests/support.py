"""Builders for events, contexts and fixtures used across the suites (no assertions here)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

LANDING = "landing-bucket"
ARCHIVE = "archive-bucket"
DISTRIBUTION = "distribution-bucket"
TABLE = "idempotency-table"
EVENTS_QUEUE = "landing-events"

BASE_ENV = {
    "ARCHIVE_BUCKET_NAME": ARCHIVE,
    "DISTRIBUTION_BUCKET_NAME": DISTRIBUTION,
    "IDEMPOTENCY_TABLE_NAME": TABLE,
}


def s3_record(
    key: str,
    *,
    bucket: str = LANDING,
    size: int = 0,
    etag: str | None = None,
    version_id: str | None = None,
    sequencer: str | None = None,
    event_name: str = "ObjectCreated:Put",
    event_time: str | None = None,
    encode_slash: bool = False,
) -> dict[str, Any]:
    """A notification record shaped like real S3's (key form-encoded, '/' left alone unless asked)."""
    encoded = quote_plus(key, safe="" if encode_slash else "/")
    obj: dict[str, Any] = {"key": encoded, "size": size}
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": event_time or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj},
    }


def notification(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def sqs_record(body: str, *, message_id: str | None = None, receive_count: int = 1) -> dict[str, Any]:
    sent = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle-" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": sent,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{EVENTS_QUEUE}",
        "awsRegion": "us-east-1",
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle read back for assertions: members by name and the parsed manifest."""

    members: dict[str, bytes]
    order: list[str]
    manifest: dict[str, Any]


def read_bundle(data: bytes) -> OpenedBundle:
    members: dict[str, bytes] = {}
    order: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            extracted = tar.extractfile(info)
            assert extracted is not None
            members[info.name] = extracted.read()
            order.append(info.name)
    return OpenedBundle(members=members, order=order, manifest=json.loads(members["manifest.json"]))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


def chunked(data: bytes, size: int) -> Iterable[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
