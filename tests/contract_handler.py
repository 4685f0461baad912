"""A minimal handler honouring the public contract, to exercise the sandbox without the real one.

It is deliberately naive (in-memory dedup, whole objects in memory): it exists only so that the ESM
emulator, the consumer and the demo's reconciliation can be tested on their own.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from data_aggregator.ops.bundles import unsafe_member_reason
from tests.bundle_factory import SourceFile, build_bundle, put_bundle

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ContractHandler:
    """SQS event in, partial batch response out; bundles written to Archive, then Distribution."""

    def __init__(self, s3: S3Client, archive: str, distribution: str) -> None:
        self.s3 = s3
        self.archive = archive
        self.distribution = distribution
        self.done: set[tuple[str, str, str]] = set()
        self.invocations: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.invocations.append({"records": len(event["Records"]), "remaining": context.get_remaining_time_in_millis()})
        failures: list[dict[str, str]] = []
        files: list[SourceFile] = []
        claimed: list[tuple[str, str, str]] = []
        for record in event["Records"]:
            try:
                body = json.loads(record["body"])
            except json.JSONDecodeError:
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
                continue
            if not isinstance(body, dict) or not isinstance(body.get("Records"), list):
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            for s3_record in body["Records"]:
                bucket = s3_record["s3"]["bucket"]["name"]
                key = unquote_plus(s3_record["s3"]["object"]["key"])
                identity = (bucket, key, s3_record["s3"]["object"].get("eTag", ""))
                with self.lock:
                    if identity in self.done or identity in claimed:
                        continue
                claimed.append(identity)
                data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                member = key if unsafe_member_reason(key) is None else "m-" + hashlib.sha256(key.encode()).hexdigest()
                files.append(SourceFile(key, data, member=member, bucket=bucket))
        if files:
            bundle_id = uuid.uuid4().hex
            data = build_bundle(files, bundle_id)
            key = f"bundles/{datetime.now(UTC):%Y/%m/%d/%H}/{bundle_id}.tar.gz"
            put_bundle(self.s3, self.archive, key, data)
            put_bundle(self.s3, self.distribution, key, data)
        with self.lock:
            self.done.update(claimed)
        return {"batchItemFailures": failures}
