"""Small facades over S3 and DynamoDB; each takes its boto3 client as a constructor argument.

Transient faults (throttling, 5xx, timeouts) are retried by botocore's "standard" retry mode, which
``make_clients`` configures; these facades add what the SDK cannot know: resuming a broken GET body
with a Range request, finding an overwritten version by its ETag, the claim state machine, and the
classification of every failure into our error taxonomy.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from data_aggregator.core import BuiltBundle
from data_aggregator.errors import ClaimStoreError, FetchError, ObjectMissingError, UploadError
from data_aggregator.models import ClaimResult, ClaimStatus, SourceObject

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
        WriteRequestOutputTypeDef,
        WriteRequestTypeDef,
    )
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

logger = logging.getLogger(__name__)

BUNDLE_CONTENT_TYPE = "application/gzip"
SHA256_METADATA_KEY = "content-sha256"
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})
# Retrying cannot fix these: the function lacks permission or the object sits in an archive tier.
_PERMANENT_CODES = frozenset({"AccessDenied", "InvalidObjectState", "AllAccessDisabled", "InvalidRequest"})
# Errors a response body can raise mid-read; the stream is then resumed with a Range GET.
_STREAM_ERRORS = (BotoCoreError, Urllib3HTTPError, OSError)

type Sleep = Callable[[float], None]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 5.0) -> float:
    """Full-jitter exponential backoff: spreads retries of concurrent invocations apart.

    The jitter needs no cryptographic randomness, hence the suppressed S311/B311 warnings.
    """
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311  # nosec B311


@dataclass(frozen=True, slots=True)
class AwsClients:
    s3: S3Client
    dynamodb: DynamoDBClient


def make_clients(*, max_pool_connections: int = 32) -> AwsClients:
    """boto3 clients with standard retries; endpoints come from AWS_ENDPOINT_URL when set (emulators).

    Five attempts (botocore's standard mode, exponential backoff with jitter) ride out throttling and
    brief 5xx storms; AWS_MAX_ATTEMPTS, the SDK's own variable, overrides it.
    """
    config = Config(
        retries={"mode": "standard", "total_max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS") or 5)},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=30,
        tcp_keepalive=True,
    )
    session = boto3.session.Session()
    return AwsClients(s3=session.client("s3", config=config), dynamodb=session.client("dynamodb", config=config))


# --------------------------------------------------------------------------------------------- S3 source


class S3ObjectStream:
    """An open GET whose body is read in chunks; a broken body resumes at the same byte with Range.

    Every resume pins the object with ``If-Match`` on the ETag of the first response (and the version
    id when known), so bytes from two different writes can never be stitched together.
    """

    def __init__(
        self,
        client: S3Client,
        request: dict[str, str],
        response: GetObjectOutputTypeDef,
        *,
        chunk_size: int,
        max_resumes: int,
        sleep: Sleep,
    ) -> None:
        self._client = client
        self._request = request
        self._body = response["Body"]
        self._chunk_size = chunk_size
        self._max_resumes = max_resumes
        self._sleep = sleep
        self.size = int(response["ContentLength"])
        self.etag: str | None = response.get("ETag", "").strip('"') or None
        version = response.get("VersionId")
        self.version_id: str | None = version if version and version != "null" else None
        self.resumes = 0

    def chunks(self) -> Iterator[bytes]:
        offset = 0
        while True:
            try:
                for chunk in self._body.iter_chunks(self._chunk_size):
                    offset += len(chunk)
                    yield chunk
            except _STREAM_ERRORS as exc:
                if offset >= self.size:
                    raise self._error(f"stream failed after all {self.size} bytes arrived", exc) from exc
                self._resume(offset, exc)
                continue
            if offset != self.size:
                raise self._error(f"stream ended at {offset} of {self.size} bytes", None)
            return

    def close(self) -> None:
        self._body.close()

    def _resume(self, offset: int, cause: BaseException) -> None:
        if self.resumes >= self._max_resumes:
            raise self._error(f"stream broke at byte {offset} of {self.size} after {self.resumes} resumes", cause)
        self._sleep(backoff_delay(self.resumes))
        self.resumes += 1
        self._body.close()
        request: dict[str, Any] = {**self._request, "Range": f"bytes={offset}-"}
        if self.etag:
            request["IfMatch"] = f'"{self.etag}"'
        try:
            response = self._client.get_object(**request)
        except ClientError as exc:
            raise self._error(f"resuming at byte {offset} failed ({error_code(exc)})", exc) from exc
        content_range = str(response.get("ContentRange", ""))
        if not content_range.startswith(f"bytes {offset}-"):
            raise self._error(f"resume at byte {offset} got Content-Range {content_range!r}", cause)
        self._body = response["Body"]

    def _error(self, what: str, cause: BaseException | None) -> FetchError:
        bucket, key = self._request["Bucket"], self._request["Key"]
        return FetchError(
            f"reading s3://{bucket}/{key}: {what}", operation="GetObject", bucket=bucket, key=key, cause=cause
        )


class LandingReader:
    """Opens Landing objects exactly as the notification named them (version, else ETag)."""

    def __init__(self, client: S3Client, *, chunk_size: int, max_resumes: int = 3, sleep: Sleep = time.sleep) -> None:
        self._client = client
        self._chunk_size = chunk_size
        self._max_resumes = max_resumes
        self._sleep = sleep

    def open(self, obj: SourceObject) -> S3ObjectStream:
        """GET by versionId when the event has one; otherwise pin the event's ETag with If-Match.

        If-Match turns "the key was overwritten since the event" into a precondition failure instead
        of silently bundling the newer bytes under the older event. In a versioned bucket whose events
        carry no versionId (emulators), the older version is then found by its ETag.
        """
        request: dict[str, str] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            request["VersionId"] = obj.version_id
        elif obj.etag:
            request["IfMatch"] = f'"{obj.etag}"'
        try:
            response = self._client.get_object(**request)  # type: ignore[arg-type]
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING_CODES:
                raise ObjectMissingError(
                    f"{obj.describe()} no longer exists ({code})", operation="GetObject", bucket=obj.bucket, key=obj.key
                ) from None
            if code in _PRECONDITION_CODES and not obj.version_id and obj.etag:
                return self._open_older_version(obj)
            raise _fetch_failure(obj, "GetObject", "failed", exc) from exc
        except BotoCoreError as exc:
            raise _fetch_failure(obj, "GetObject", "failed", exc) from exc
        pinned = {k: v for k, v in request.items() if k != "IfMatch"}
        return S3ObjectStream(
            self._client,
            pinned,
            response,
            chunk_size=self._chunk_size,
            max_resumes=self._max_resumes,
            sleep=self._sleep,
        )

    def _open_older_version(self, obj: SourceObject) -> S3ObjectStream:
        version = self._version_with_etag(obj)
        if version is None:
            raise ObjectMissingError(
                f"{obj.describe()} was overwritten before it was read and no version with ETag {obj.etag} remains",
                operation="GetObject",
                bucket=obj.bucket,
                key=obj.key,
            )
        return self.open(replace(obj, version_id=version))

    def _version_with_etag(self, obj: SourceObject) -> str | None:
        paginator = self._client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=obj.bucket, Prefix=obj.key):
                for version in page.get("Versions", []):
                    if version.get("Key") == obj.key and version.get("ETag", "").strip('"') == obj.etag:
                        return version.get("VersionId")
        except (ClientError, BotoCoreError) as exc:
            raise _fetch_failure(obj, "ListObjectVersions", f"finding the version with ETag {obj.etag}", exc) from exc
        return None


def _fetch_failure(obj: SourceObject, operation: str, what: str, exc: Exception) -> FetchError:
    """Classify a read failure: permission and archive-tier errors cannot be fixed by a retry."""
    code = error_code(exc) if isinstance(exc, ClientError) else ""
    return FetchError(
        f"{operation} {obj.describe()}: {what} ({code or exc})",
        operation=operation,
        bucket=obj.bucket,
        key=obj.key,
        cause=exc,
        retryable=code not in _PERMANENT_CODES,
    )


# ------------------------------------------------------------------------------------------ S3 publish


class BundlePublisher:
    """Writes a finished bundle to one bucket with its whole-object SHA-256, exactly once.

    Up to the multipart threshold a single PutObject carries ``ChecksumSHA256``, which S3 verifies
    against the bytes it stores (a corrupt upload is rejected). Larger bundles go through boto3's
    transfer manager, where S3's SHA-256 becomes a composite of part hashes; ``content-sha256``
    metadata always holds the whole-object digest the consumer checks.

    The single PutObject is conditional (``If-None-Match: *``) and bundle keys are unique, so a write
    can be repeated safely: when an earlier attempt was stored but its answer was lost, the repeat gets
    412 and we know the bundle is there. Without that, a lost answer would be taken for a failure, the
    claims released, and the redelivery would publish the same files in a second bundle.
    """

    def __init__(
        self,
        client: S3Client,
        *,
        multipart_threshold: int,
        multipart_chunksize: int = 64 * 1024**2,
        attempts: int = 3,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._client = client
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize, max_concurrency=4
        )
        self._threshold = multipart_threshold
        self._attempts = attempts
        self._sleep = sleep

    def put(self, bucket: str, key: str, bundle: BuiltBundle) -> None:
        """Store the bundle; on ambiguous failures repeat the (idempotent) write a few times."""
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(backoff_delay(attempt))
            try:
                self._put_once(bucket, key, bundle)
            except ClientError as exc:
                code = error_code(exc)
                if code in _PRECONDITION_CODES and bundle.size <= self._threshold:
                    logger.info("bundle already stored by an earlier attempt", extra={"bucket": bucket, "key": key})
                    return
                if not _worth_repeating(exc) or attempt == self._attempts - 1:
                    raise _upload_error(bucket, key, code, exc) from exc
            except BotoCoreError as exc:
                if attempt == self._attempts - 1:
                    raise _upload_error(bucket, key, type(exc).__name__, exc) from exc
            else:
                return

    def _put_once(self, bucket: str, key: str, bundle: BuiltBundle) -> None:
        metadata = {SHA256_METADATA_KEY: bundle.sha256_hex}
        bundle.body.seek(0)
        if bundle.size <= self._threshold:
            self._client.put_object(
                Bucket=bucket,
                Key=key,
                Body=bundle.body,
                ContentLength=bundle.size,
                ContentType=BUNDLE_CONTENT_TYPE,
                Metadata=metadata,
                ChecksumSHA256=bundle.sha256_b64,
                IfNoneMatch="*",
            )
        else:
            self._client.upload_fileobj(
                bundle.body,
                bucket,
                key,
                ExtraArgs={"ContentType": BUNDLE_CONTENT_TYPE, "Metadata": metadata, "ChecksumAlgorithm": "SHA256"},
                Config=self._transfer,
            )


def _worth_repeating(exc: ClientError) -> bool:
    """Server-side and throttling errors may clear; permission or request errors will not."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status >= 500 or error_code(exc) in {"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException"}


def _upload_error(bucket: str, key: str, code: str, exc: Exception) -> UploadError:
    return UploadError(
        f"writing bundle s3://{bucket}/{key} failed ({code})", operation="PutObject", bucket=bucket, key=key, cause=exc
    )


# ------------------------------------------------------------------------------------------ claims


_IN_PROGRESS = "IN_PROGRESS"
_COMPLETED = "COMPLETED"
_TRANSACT_LIMIT = 100
_BATCH_WRITE_LIMIT = 25


class ClaimStore:
    """The idempotency table: IN_PROGRESS lease -> COMPLETED (with bundle key), or released.

    Claims are conditional puts grouped into TransactWriteItems calls (up to 100 per call); a
    cancelled transaction reports per item why, so duplicates and live leases are classified without
    extra reads and the rest are retried. Commits and releases are unconditional BatchWriteItem calls:
    only the lease holder ever issues them, and the lease outlives the invocation.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        *,
        table: str,
        ttl_attribute: str,
        ttl_days: int,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = time.sleep,
        max_rounds: int = 5,
    ) -> None:
        self._client = client
        self._table = table
        self._ttl_attribute = ttl_attribute
        self._ttl_seconds = ttl_days * 86_400
        self._clock = clock
        self._sleep = sleep
        self._max_rounds = max_rounds

    def claim(self, objects: Sequence[SourceObject], *, owner: str, lease_seconds: int) -> dict[str, ClaimResult]:
        results: dict[str, ClaimResult] = {}
        for start in range(0, len(objects), _TRANSACT_LIMIT):
            results.update(self._claim_chunk(objects[start : start + _TRANSACT_LIMIT], owner, lease_seconds))
        return results

    def commit(self, objects: Sequence[SourceObject], *, owner: str, bundle_key: str) -> None:
        now = int(self._clock())
        items: list[WriteRequestTypeDef] = [
            {"PutRequest": {"Item": {**self._identity(obj), **self._completed(owner, bundle_key, now)}}}
            for obj in objects
        ]
        self._batch_write(items, "commit")

    def release(self, objects: Sequence[SourceObject]) -> None:
        items: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": {"ObjectID": {"S": obj.object_id}}}} for obj in objects
        ]
        self._batch_write(items, "release")

    # -- internals

    def _claim_chunk(self, objects: Sequence[SourceObject], owner: str, lease_seconds: int) -> dict[str, ClaimResult]:
        pending = {obj.object_id: obj for obj in objects}
        results: dict[str, ClaimResult] = {}
        last_error: ClaimStoreError | None = None
        for attempt in range(self._max_rounds):
            if not pending:
                break
            if attempt:
                self._sleep(backoff_delay(attempt))
            now = int(self._clock())
            order = list(pending)
            try:
                self._client.transact_write_items(
                    TransactItems=[self._claim_put(pending[oid], owner, now, lease_seconds) for oid in order]
                )
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons")
                if error_code(exc) != "TransactionCanceledException" or not reasons:
                    last_error = self._store_error("TransactWriteItems", exc)
                    if error_code(exc) in {"ValidationException", "AccessDeniedException", "ResourceNotFoundException"}:
                        break
                    continue
                for oid, reason in zip(order, reasons, strict=True):
                    verdict = self._classify(reason, owner, now)
                    if verdict is not None:
                        results[oid] = verdict
                        del pending[oid]
                continue
            except BotoCoreError as exc:
                last_error = self._store_error("TransactWriteItems", exc)
                continue
            for oid in order:
                results[oid] = ClaimResult(ClaimStatus.CLAIMED)
            pending.clear()
        error = last_error or ClaimStoreError("claims kept conflicting", operation="TransactWriteItems")
        for oid in pending:
            results[oid] = ClaimResult(ClaimStatus.ERROR, error=error)
        return results

    def _classify(self, reason: Mapping[str, Any], owner: str, now: int) -> ClaimResult | None:
        """Turn one cancellation reason into a verdict; None means "not decided, try again"."""
        if reason.get("Code") != "ConditionalCheckFailed":
            return None  # 'None' (cancelled because of a neighbour), TransactionConflict, throttling
        item = reason.get("Item") or {}
        status = item.get("status", {}).get("S")
        if status == _COMPLETED:
            return ClaimResult(ClaimStatus.DUPLICATE, bundle_key=item.get("bundle_key", {}).get("S"))
        if item.get("owner", {}).get("S") == owner:
            return ClaimResult(ClaimStatus.CLAIMED)  # our own earlier attempt went through
        lease = int(item.get("lease_expires_at", {}).get("N", "0"))
        if status == _IN_PROGRESS and lease >= now:
            return ClaimResult(ClaimStatus.HELD)
        return None  # expired between our read of the clock and the write: try again

    def _claim_put(self, obj: SourceObject, owner: str, now: int, lease_seconds: int) -> TransactWriteItemTypeDef:
        item: dict[str, AttributeValueTypeDef] = {
            **self._identity(obj),
            "status": {"S": _IN_PROGRESS},
            "owner": {"S": owner},
            "claimed_at": {"N": str(now)},
            "lease_expires_at": {"N": str(now + lease_seconds)},
            self._ttl_attribute: {"N": str(now + self._ttl_seconds)},
        }
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(ObjectID) OR (#s = :in_progress AND #lease < :now)",
                "ExpressionAttributeNames": {"#s": "status", "#lease": "lease_expires_at"},
                "ExpressionAttributeValues": {":in_progress": {"S": _IN_PROGRESS}, ":now": {"N": str(now)}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _completed(self, owner: str, bundle_key: str, now: int) -> dict[str, AttributeValueTypeDef]:
        return {
            "status": {"S": _COMPLETED},
            "owner": {"S": owner},
            "bundle_key": {"S": bundle_key},
            "completed_at": {"N": str(now)},
            self._ttl_attribute: {"N": str(now + self._ttl_seconds)},
        }

    @staticmethod
    def _identity(obj: SourceObject) -> dict[str, AttributeValueTypeDef]:
        kind, value = obj.discriminator
        return {
            "ObjectID": {"S": obj.object_id},
            "bucket": {"S": obj.bucket},
            "object_key": {"S": obj.key},
            "discriminator": {"S": f"{kind}:{value}"},
        }

    def _batch_write(self, requests: Sequence[WriteRequestTypeDef], what: str) -> None:
        for start in range(0, len(requests), _BATCH_WRITE_LIMIT):
            pending: Sequence[WriteRequestTypeDef | WriteRequestOutputTypeDef] = requests[
                start : start + _BATCH_WRITE_LIMIT
            ]
            for attempt in range(self._max_rounds):
                if attempt:
                    self._sleep(backoff_delay(attempt))
                try:
                    response = self._client.batch_write_item(RequestItems={self._table: pending})
                except (ClientError, BotoCoreError) as exc:
                    if attempt == self._max_rounds - 1:
                        raise self._store_error(f"BatchWriteItem ({what})", exc) from exc
                    continue
                pending = list(response.get("UnprocessedItems", {}).get(self._table, []))
                if not pending:
                    break
            else:
                raise ClaimStoreError(
                    f"{len(pending)} {what} writes stayed unprocessed after {self._max_rounds} rounds",
                    operation="BatchWriteItem",
                )

    def _store_error(self, operation: str, exc: Exception) -> ClaimStoreError:
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return ClaimStoreError(f"{operation} on {self._table} failed ({code})", operation=operation, cause=exc)
