"""Small facades over S3, DynamoDB and SQS; each takes its boto3 client as a constructor argument.

Transient faults (throttling, 5xx, timeouts) are retried by botocore's "standard" retry mode, which
``make_clients`` configures; these facades add what the SDK cannot know: resuming a broken GET body
with a Range request, finding an overwritten version by its ETag, the claim state machine, and the
classification of every failure into our error taxonomy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import boto3
from botocore.awsrequest import AWSPreparedRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from data_aggregator.core import BundleBody, StoredBundle, current_deadline
from data_aggregator.errors import (
    ClaimStoreError,
    FetchError,
    ObjectMissingError,
    PermanentStoreError,
    SizeMismatchError,
    UploadError,
)
from data_aggregator.models import ClaimResult, ClaimStatus, Deferral, SourceObject

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
    )
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, GetObjectOutputTypeDef
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

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

# Below this many seconds of budget a call is not started: it could not finish, and a refused call is
# cheaper than one that stalls past the deadline.
_MIN_CALL_SECONDS = 0.5
_READ_TIMEOUT_SECONDS = 30.0
_CONNECT_TIMEOUT_SECONDS = 3.0
# botocore's standard retry mode sleeps up to min(20, 2 ** (attempt - 1)) seconds before the next attempt.
_SDK_MAX_BACKOFF_SECONDS = 20.0


class DeadlineReachedError(BotoCoreError):
    """A call refused because the invocation's deadline leaves no time for it (see ``core.Deadline``).

    A BotoCoreError so that every facade treats it like any failed call; botocore does not retry it.
    """

    fmt = "not started: {budget:.2f} s left before the invocation's deadline"


def deadline_budget() -> float | None:
    """Seconds the current invocation's calls may still take; None outside an invocation (CLI, tests)."""
    deadline = current_deadline()
    return None if deadline is None else deadline.budget()


def _bound_request(request: AWSPreparedRequest, **_: object) -> None:
    """botocore ``before-send`` hook, run before every attempt: cap its read timeout at the budget.

    botocore reads a per-request ``read_timeout`` from the request context, so a stalled response can
    no longer hold the invocation past its deadline whatever the client's configured timeout is.
    """
    budget = deadline_budget()
    if budget is None:
        return
    if budget < _MIN_CALL_SECONDS:
        raise DeadlineReachedError(budget=budget)
    context: dict[str, object] = request.context  # type: ignore[attr-defined]  # botocore >= 1.42, not in stubs
    context["read_timeout"] = min(_READ_TIMEOUT_SECONDS, budget)


def _retry_within_deadline(attempts: int, **_: object) -> bool | None:
    """botocore ``needs-retry`` hook, run before the SDK's own: no retry whose sleep could pass the deadline.

    Returning False stops the retries (the last error is raised); None leaves the decision to the SDK.
    """
    budget = deadline_budget()
    if budget is None:
        return None
    worst_sleep = min(_SDK_MAX_BACKOFF_SECONDS, 2.0 ** max(attempts - 1, 0))
    return False if budget < worst_sleep + _MIN_CALL_SECONDS else None


def bind_to_deadlines(client: BaseClient) -> None:
    """Install the deadline hooks on a boto3 client (idempotent: unique ids)."""
    service = client.meta.service_model.service_id.hyphenize()
    # The stubs type handlers as returning None; needs-retry handlers return a verdict by design.
    client.meta.events.register_first(
        f"needs-retry.{service}",
        _retry_within_deadline,  # type: ignore[arg-type]
        unique_id="deadline-retry",
    )
    client.meta.events.register_first(f"before-send.{service}", _bound_request, unique_id="deadline-send")


def cut_by_deadline(exc: BaseException | None) -> bool:
    """Did the invocation's deadline end this call, rather than the service's answer or the network?

    A call refused for lack of time is; so is a timeout of a call whose timeout was the time left
    (``_bound_request``), which leaves no budget behind. A timeout with time to spare is the service's.
    """
    if isinstance(exc, DeadlineReachedError):
        return True
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | Urllib3TimeoutError):
        budget = deadline_budget()
        return budget is not None and budget <= _MIN_CALL_SECONDS
    return False


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
    sqs: SQSClient


def make_clients(*, max_pool_connections: int = 32) -> AwsClients:
    """boto3 clients with standard retries; endpoints come from AWS_ENDPOINT_URL when set (emulators).

    Five attempts (botocore's standard mode, exponential backoff with jitter) ride out throttling and
    brief 5xx storms; AWS_MAX_ATTEMPTS, the SDK's own variable, overrides it. Inside an invocation
    every attempt, its read timeout and the sleep before it are bounded by the deadline.
    """
    config = Config(
        retries={"mode": "standard", "total_max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS") or 5)},
        max_pool_connections=max_pool_connections,
        connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        read_timeout=_READ_TIMEOUT_SECONDS,
        tcp_keepalive=True,
        # Every request is built here, never from user input, and the services validate what they
        # receive anyway; botocore's client-side pass over each 100-item claim transaction cost about
        # as much CPU as building and sending it (docs/performance.md, section 7).
        parameter_validation=False,
    )
    # botocore SigV4-signs an upload's payload (one more SHA-256 pass over the whole bundle, per bucket)
    # unless it sees a checksum it computed itself; ours, ChecksumSHA256, is passed in, so it cannot
    # tell. S3 verifies that checksum against the stored bytes and the request goes over TLS, which is
    # the combination under which botocore itself skips payload signing.
    s3_config = config.merge(Config(s3={"payload_signing_enabled": False}))
    session = boto3.session.Session()
    clients = AwsClients(
        s3=session.client("s3", config=s3_config),
        dynamodb=session.client("dynamodb", config=config),
        sqs=session.client("sqs", config=config),
    )
    bind_to_deadlines(clients.s3)
    bind_to_deadlines(clients.dynamodb)
    bind_to_deadlines(clients.sqs)
    return clients


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
                    _check_budget(self._error, f"stopped at byte {offset} of {self.size}")
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
        delay = backoff_delay(self.resumes)
        _check_budget(self._error, f"no time left to resume at byte {offset}", delay)
        self._sleep(delay)
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

    def _error(self, what: str, cause: BaseException | None, *, out_of_time: bool = False) -> FetchError:
        bucket, key = self._request["Bucket"], self._request["Key"]
        return FetchError(
            f"reading s3://{bucket}/{key}: {what}",
            operation="GetObject",
            bucket=bucket,
            key=key,
            cause=cause,
            out_of_time=out_of_time or cut_by_deadline(cause),
        )


def _check_budget(error: Callable[..., FetchError], what: str, after: float = 0.0) -> None:
    """Raise the reader's error when the deadline leaves no time to go on (after sleeping ``after``)."""
    budget = deadline_budget()
    if budget is not None and budget < after + _MIN_CALL_SECONDS:
        raise error(f"{what}: the invocation's deadline is near ({budget:.1f} s left)", None, out_of_time=True)


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
        size = int(response["ContentLength"])
        if obj.size is not None and size != obj.size and (obj.version_id or obj.etag):
            response["Body"].close()
            raise SizeMismatchError(
                f"{obj.describe()} is {size} bytes but its event announced {obj.size}; the read was pinned to that "
                "write, so the event and the object disagree",
                operation="GetObject",
                bucket=obj.bucket,
                key=obj.key,
            )
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
        out_of_time=cut_by_deadline(exc),
    )


# ------------------------------------------------------------------------------------------ S3 publish


class BundlePublisher:
    """Writes finished bundles to the output buckets exactly once, and reads back what is there.

    Every write is conditional (``If-None-Match: *``) and bundle keys are unique, so a write can be
    repeated safely: when an earlier attempt was stored but its answer was lost, the repeat gets 412
    and we know the bundle is there. Up to the multipart threshold a single PutObject carries
    ``ChecksumSHA256``, which S3 verifies against the bytes it stores. Larger bundles are uploaded in
    parts, each with its SHA-256, and completed with the same ``If-None-Match: *`` (S3 accepts it on
    CompleteMultipartUpload; boto3's transfer manager does not pass it, hence our own loop).
    ``content-sha256`` metadata always holds the whole-object digest the consumer checks.

    The read side serves the recovery of a previous owner's bundle: does Archive hold it, was it ever
    written to Distribution (a versioned bucket remembers a consumed-and-deleted object as a delete
    marker), and its bytes, verified against their own ``content-sha256``.
    """

    def __init__(
        self,
        client: S3Client,
        *,
        multipart_threshold: int,
        multipart_chunksize: int = 64 * 1024**2,
        attempts: int = 3,
        sleep: Sleep = time.sleep,
        spool_memory_bytes: int = 64 * 1024**2,
    ) -> None:
        self._client = client
        self._threshold = multipart_threshold
        self._part_size = multipart_chunksize
        self._attempts = attempts
        self._sleep = sleep
        self._spool_memory_bytes = spool_memory_bytes

    def put(self, bucket: str, key: str, bundle: BundleBody) -> None:
        """Store the bundle; on ambiguous failures repeat the (idempotent) write a few times."""
        for attempt in range(self._attempts):
            if attempt:
                delay = backoff_delay(attempt)
                budget = deadline_budget()
                if budget is not None and budget < delay + _MIN_CALL_SECONDS:
                    raise _upload_error(bucket, key, "deadline", DeadlineReachedError(budget=budget))
                self._sleep(delay)
            try:
                if bundle.size <= self._threshold:
                    self._put_single(bucket, key, bundle)
                else:
                    self._put_multipart(bucket, key, bundle)
            except ClientError as exc:
                code = error_code(exc)
                if code in _PRECONDITION_CODES:
                    logger.info("bundle already stored by an earlier attempt", extra={"bucket": bucket, "key": key})
                    return
                if not _worth_repeating(exc) or attempt == self._attempts - 1:
                    raise _upload_error(bucket, key, code, exc) from exc
            except DeadlineReachedError as exc:
                raise _upload_error(bucket, key, "deadline", exc) from exc
            except BotoCoreError as exc:
                if attempt == self._attempts - 1:
                    raise _upload_error(bucket, key, type(exc).__name__, exc) from exc
            else:
                return

    def _put_single(self, bucket: str, key: str, bundle: BundleBody) -> None:
        bundle.body.seek(0)
        self._client.put_object(
            Bucket=bucket,
            Key=key,
            Body=bundle.body,
            ContentLength=bundle.size,
            ContentType=BUNDLE_CONTENT_TYPE,
            Metadata={SHA256_METADATA_KEY: bundle.sha256_hex},
            ChecksumSHA256=bundle.sha256_b64,
            IfNoneMatch="*",
        )

    def _put_multipart(self, bucket: str, key: str, bundle: BundleBody) -> None:
        upload = self._client.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ContentType=BUNDLE_CONTENT_TYPE,
            Metadata={SHA256_METADATA_KEY: bundle.sha256_hex},
            ChecksumAlgorithm="SHA256",
        )
        upload_id = upload["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            bundle.body.seek(0)
            number = 0
            while data := bundle.body.read(self._part_size):
                number += 1
                checksum = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
                part = self._client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumSHA256=checksum,
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": checksum})
            self._client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    # -- reading back, for recovery

    def exists(self, bucket: str, key: str) -> bool:
        """Is there a current object under ``key``? Asked with a listing of that prefix, not a HEAD.

        Without ``s3:ListBucket`` on the bucket S3 answers a HEAD of a missing key with 403, not 404
        (AWS's HeadObject reference, "Permissions"): the function's role may list Archive only below the
        bundle prefix (an ``s3:prefix`` condition, which a HEAD request does not carry), so a HEAD could
        not tell "absent" from "denied", and recovery of a bundle that never reached Archive would fail
        for ever. The first key a prefix lists is the prefix itself when it exists (keys sort
        lexicographically); S3 lists are strongly consistent with writes.
        """
        try:
            page = self._client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise _recovery_error("ListObjectsV2", bucket, key, exc) from exc
        return any(entry.get("Key") == key for entry in page.get("Contents", []))

    def ever_written(self, bucket: str, key: str) -> bool:
        """Did ``key`` ever hold an object (current, overwritten or deleted)? Needs a versioned bucket."""
        try:
            page = self._client.list_object_versions(Bucket=bucket, Prefix=key, MaxKeys=10)
        except (ClientError, BotoCoreError) as exc:
            raise _recovery_error("ListObjectVersions", bucket, key, exc) from exc
        entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        return any(entry.get("Key") == key for entry in entries)

    def read(self, bucket: str, key: str) -> StoredBundle:
        """Spool a stored bundle and check its bytes against its own ``content-sha256``."""
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _recovery_error("GetObject", bucket, key, exc) from exc
        expected = response.get("Metadata", {}).get(SHA256_METADATA_KEY, "").lower()
        spool = tempfile.SpooledTemporaryFile(max_size=self._spool_memory_bytes)  # noqa: SIM115 - handed to caller
        digest = hashlib.sha256()
        try:
            for chunk in response["Body"].iter_chunks(1024 * 1024):
                digest.update(chunk)
                spool.write(chunk)
                budget = deadline_budget()
                if budget is not None and budget < _MIN_CALL_SECONDS:
                    raise DeadlineReachedError(budget=budget)
        except _STREAM_ERRORS as exc:
            spool.close()
            raise _recovery_error("GetObject", bucket, key, exc) from exc
        if digest.hexdigest() != expected:
            spool.close()
            raise UploadError(
                f"s3://{bucket}/{key} does not match its content-sha256 ({digest.hexdigest()} != {expected or 'none'})",
                operation="GetObject",
                bucket=bucket,
                key=key,
                retryable=False,
            )
        size = spool.tell()
        spool.seek(0)
        return StoredBundle(body=spool, size=size, sha256_hex=expected)


def _recovery_error(operation: str, bucket: str, key: str, exc: Exception) -> UploadError:
    code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return UploadError(
        f"{operation} s3://{bucket}/{key} while completing a bundle failed ({code})",
        operation=operation,
        bucket=bucket,
        key=key,
        cause=exc,
        out_of_time=cut_by_deadline(exc),
    )


def _worth_repeating(exc: ClientError) -> bool:
    """Server-side and throttling errors may clear; permission or request errors will not."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status >= 500 or error_code(exc) in {"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException"}


def _upload_error(bucket: str, key: str, code: str, exc: Exception) -> UploadError:
    return UploadError(
        f"writing bundle s3://{bucket}/{key} failed ({code})",
        operation="PutObject",
        bucket=bucket,
        key=key,
        cause=exc,
        out_of_time=cut_by_deadline(exc),
    )


# ------------------------------------------------------------------------------------------ claims


_IN_PROGRESS = "IN_PROGRESS"
_COMPLETED = "COMPLETED"
_TRANSACT_LIMIT = 100
# Errors no retry can fix: a wrong table name, missing permissions, a malformed request. Retrying them
# five rounds per invocation only hides a deployment mistake behind latency.
_PERMANENT_STORE_CODES = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "UnknownOperationException",
        "MissingAuthenticationTokenException",
        "InvalidSignatureException",
        "SerializationException",
        "IncompleteSignature",
        "AccessDenied",
    }
)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the table held for an object when our last write was refused."""

    owner: str
    pending_bundle_key: str | None


class ClaimStore:
    """The idempotency table: a fenced lease per object, IN_PROGRESS -> COMPLETED (with bundle key).

    Every write after the claim is conditional on ``owner`` still being us: the owner token is the
    fence. A slow invocation whose lease expired and was taken over can therefore neither commit nor
    release the newer owner's claim; its refused writes come back as "fence lost".

    Before the first bundle write the owner records the bundle key on its claims (``pending_bundle``).
    Whoever takes over an expired claim inherits that key and completes the bundle from Archive
    instead of bundling the object again (``service.Aggregator``).

    All writes go through TransactWriteItems (up to 100 items a call): a cancelled transaction says per
    item why, with the item as it was, so fence losses, duplicates and live leases are told apart in the
    same round trip and only the undecided items are sent again.
    """

    items_per_request = _TRANSACT_LIMIT

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
        self._broken: ClaimStoreError | None = None  # a permanent error: the table is unusable
        self.requests_sent = 0  # every TransactWriteItems round: the guard plans time per request

    # -- the claim

    def claim(self, objects: Sequence[SourceObject], *, owner: str, lease_seconds: int) -> dict[str, ClaimResult]:
        results: dict[str, ClaimResult] = {}
        for start in range(0, len(objects), _TRANSACT_LIMIT):
            results.update(self._claim_chunk(objects[start : start + _TRANSACT_LIMIT], owner, lease_seconds))
        return results

    def _claim_chunk(self, objects: Sequence[SourceObject], owner: str, lease_seconds: int) -> dict[str, ClaimResult]:
        """Put-if-absent; an expired claim is taken over with an update fenced on its previous owner."""
        pending = {obj.object_id: obj for obj in objects}
        seen: dict[str, _Seen] = {}
        results: dict[str, ClaimResult] = {}
        last_error: ClaimStoreError | None = None
        for attempt in range(self._max_rounds):
            if not pending:
                break
            if self._broken is not None:
                last_error = self._broken
                break
            if attempt and not self._pause(attempt):
                last_error = _out_of_rounds("claim", last_error)
                break
            now = int(self._clock())
            order = list(pending)
            items = [self._claim_write(pending[oid], seen.get(oid), owner, now, lease_seconds) for oid in order]
            try:
                self.requests_sent += 1
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons")
                if error_code(exc) != "TransactionCanceledException" or not reasons:
                    last_error = self._store_error("TransactWriteItems (claim)", exc)
                    continue
                for oid, reason in zip(order, reasons, strict=True):
                    verdict = self._classify_claim(reason, owner, now, seen, oid)
                    if verdict is not None:
                        results[oid] = verdict
                        del pending[oid]
                continue
            except BotoCoreError as exc:
                last_error = self._store_error("TransactWriteItems (claim)", exc)
                continue
            for oid in order:
                previous = seen.get(oid)
                results[oid] = ClaimResult(
                    ClaimStatus.CLAIMED, pending_bundle_key=previous.pending_bundle_key if previous else None
                )
            pending.clear()
        error = last_error or ClaimStoreError("claims kept conflicting", operation="TransactWriteItems")
        for oid in pending:
            results[oid] = ClaimResult(ClaimStatus.ERROR, error=error)
        return results

    def _classify_claim(
        self, reason: Mapping[str, Any], owner: str, now: int, seen: dict[str, _Seen], oid: str
    ) -> ClaimResult | None:
        """One cancellation reason -> a verdict; None means "not decided, send it again"."""
        if reason.get("Code") != "ConditionalCheckFailed":
            return None  # 'None' (cancelled because of a neighbour), TransactionConflict, throttling
        item = reason.get("Item") or {}
        if not item:
            seen.pop(oid, None)  # released meanwhile: a plain put-if-absent next round
            return None
        status = _text(item, "status")
        pending_bundle = _text(item, "pending_bundle") or None
        if status == _COMPLETED:
            return ClaimResult(ClaimStatus.DUPLICATE, bundle_key=_text(item, "bundle_key") or None)
        if _text(item, "owner") == owner:
            # Our own earlier attempt went through (its answer was lost), or our takeover did.
            return ClaimResult(ClaimStatus.CLAIMED, pending_bundle_key=pending_bundle)
        lease = int(item.get("lease_expires_at", {}).get("N", "0"))
        if status == _IN_PROGRESS and lease >= now:
            return ClaimResult(ClaimStatus.HELD, lease_expires_at=lease)
        seen[oid] = _Seen(owner=_text(item, "owner"), pending_bundle_key=pending_bundle)
        return None  # expired: take it over next round, fenced on the owner we just saw

    def _claim_write(
        self, obj: SourceObject, previous: _Seen | None, owner: str, now: int, lease_seconds: int
    ) -> TransactWriteItemTypeDef:
        lease_values: dict[str, AttributeValueTypeDef] = {
            ":in_progress": {"S": _IN_PROGRESS},
            ":owner": {"S": owner},
            ":claimed_at": {"N": str(now)},
            ":lease": {"N": str(now + lease_seconds)},
            ":ttl": {"N": str(now + self._ttl_seconds)},
        }
        if previous is None:
            item: dict[str, AttributeValueTypeDef] = {
                **self._identity(obj),
                "status": lease_values[":in_progress"],
                "owner": lease_values[":owner"],
                "claimed_at": lease_values[":claimed_at"],
                "lease_expires_at": lease_values[":lease"],
                self._ttl_attribute: lease_values[":ttl"],
            }
            return {
                "Put": {
                    "TableName": self._table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(ObjectID)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        # A takeover keeps ``pending_bundle``: the new owner must learn what the previous one was doing.
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"ObjectID": {"S": obj.object_id}},
                "UpdateExpression": "SET #owner = :owner, claimed_at = :claimed_at, #lease = :lease, #ttl = :ttl",
                "ConditionExpression": "#s = :in_progress AND #owner = :previous AND #lease < :now",
                "ExpressionAttributeNames": {
                    "#s": "status",
                    "#owner": "owner",
                    "#lease": "lease_expires_at",
                    "#ttl": self._ttl_attribute,
                },
                "ExpressionAttributeValues": {
                    **lease_values,
                    ":previous": {"S": previous.owner},
                    ":now": {"N": str(now)},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    # -- fenced writes of the owner

    def record_intent(self, objects: Sequence[SourceObject], *, owner: str, bundle_key: str) -> set[str]:
        """Note on each claim the bundle about to be written; returns the ids whose fence was lost."""
        return self._fenced(
            objects,
            owner,
            "intent",
            lambda obj: self._owner_update(obj, owner, "SET pending_bundle = :bundle", {":bundle": {"S": bundle_key}}),
            lambda item: False,
        )

    def commit(self, objects: Sequence[SourceObject], *, owner: str, bundle_key: str) -> set[str]:
        """IN_PROGRESS -> COMPLETED with the bundle key; returns the ids whose fence was lost.

        An item already COMPLETED with this bundle key counts as done: a taker completed our bundle, or
        an earlier attempt of this call went through and its answer was lost.
        """
        now = int(self._clock())
        values: dict[str, AttributeValueTypeDef] = {
            ":completed": {"S": _COMPLETED},
            ":bundle": {"S": bundle_key},
            ":now": {"N": str(now)},
            ":ttl": {"N": str(now + self._ttl_seconds)},
        }
        expression = (
            "SET #s = :completed, bundle_key = :bundle, completed_at = :now, #ttl = :ttl "
            "REMOVE pending_bundle, lease_expires_at"
        )
        return self._fenced(
            objects,
            owner,
            "commit",
            lambda obj: self._owner_update(obj, owner, expression, values),
            lambda item: _text(item, "status") == _COMPLETED and _text(item, "bundle_key") == bundle_key,
        )

    def release(self, objects: Sequence[SourceObject], *, owner: str) -> set[str]:
        """Delete our claims so a retry can claim at once; returns the ids whose fence was lost."""

        def delete(obj: SourceObject) -> TransactWriteItemTypeDef:
            return {
                "Delete": {
                    "TableName": self._table,
                    "Key": {"ObjectID": {"S": obj.object_id}},
                    "ConditionExpression": "#s = :in_progress AND #owner = :owner",
                    "ExpressionAttributeNames": {"#s": "status", "#owner": "owner"},
                    "ExpressionAttributeValues": {":in_progress": {"S": _IN_PROGRESS}, ":owner": {"S": owner}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }

        return self._fenced(objects, owner, "release", delete, lambda item: not item)

    def hand_over(self, objects: Sequence[SourceObject], *, owner: str) -> set[str]:
        """End our lease now but keep the claim and its pending bundle, for the next owner to complete.

        Used once a bundle write was attempted: the bundle may be in Archive, so the claim must not be
        deleted (a fresh claim would bundle the object again); the redelivered message takes it over.
        """
        return self._fenced(
            objects,
            owner,
            "hand over",
            lambda obj: self._owner_update(obj, owner, "SET #lease = :zero", {":zero": {"N": "0"}}),
            lambda item: False,
        )

    def _owner_update(
        self, obj: SourceObject, owner: str, expression: str, values: Mapping[str, AttributeValueTypeDef]
    ) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"ObjectID": {"S": obj.object_id}},
                "UpdateExpression": expression,
                "ConditionExpression": "#s = :in_progress AND #owner = :owner",
                "ExpressionAttributeNames": {
                    "#s": "status",
                    "#owner": "owner",
                    **({"#lease": "lease_expires_at"} if "#lease" in expression else {}),
                    **({"#ttl": self._ttl_attribute} if "#ttl" in expression else {}),
                },
                "ExpressionAttributeValues": {
                    **values,
                    ":in_progress": {"S": _IN_PROGRESS},
                    ":owner": {"S": owner},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _fenced(
        self,
        objects: Sequence[SourceObject],
        owner: str,
        what: str,
        write: Callable[[SourceObject], TransactWriteItemTypeDef],
        already_done: Callable[[Mapping[str, Any]], bool],
    ) -> set[str]:
        """Apply one conditional write per object; refused ones are fence losses unless already done."""
        lost: set[str] = set()
        for start in range(0, len(objects), _TRANSACT_LIMIT):
            pending = {obj.object_id: obj for obj in objects[start : start + _TRANSACT_LIMIT]}
            last_error: ClaimStoreError | None = None
            for attempt in range(self._max_rounds):
                if not pending:
                    break
                if self._broken is not None:
                    raise self._broken
                if attempt and not self._pause(attempt):
                    last_error = _out_of_rounds(what, last_error)
                    break
                order = list(pending)
                try:
                    self.requests_sent += 1
                    self._client.transact_write_items(TransactItems=[write(pending[oid]) for oid in order])
                except ClientError as exc:
                    reasons = exc.response.get("CancellationReasons")
                    if error_code(exc) != "TransactionCanceledException" or not reasons:
                        last_error = self._store_error(f"TransactWriteItems ({what})", exc)
                        continue
                    for oid, reason in zip(order, reasons, strict=True):
                        if reason.get("Code") == "ConditionalCheckFailed":
                            del pending[oid]
                            if not already_done(reason.get("Item") or {}):
                                lost.add(oid)
                    continue
                except BotoCoreError as exc:
                    last_error = self._store_error(f"TransactWriteItems ({what})", exc)
                    continue
                pending.clear()
            if pending:
                raise last_error or ClaimStoreError(
                    f"{len(pending)} {what} writes stayed undecided after {self._max_rounds} rounds",
                    operation="TransactWriteItems",
                )
        return lost

    def _pause(self, attempt: int) -> bool:
        """Back off before another round; False when the invocation's deadline leaves no room for it."""
        delay = backoff_delay(attempt)
        budget = deadline_budget()
        if budget is not None and budget < delay + _MIN_CALL_SECONDS:
            return False
        self._sleep(delay)
        return True

    @staticmethod
    def _identity(obj: SourceObject) -> dict[str, AttributeValueTypeDef]:
        kind, value = obj.discriminator
        return {
            "ObjectID": {"S": obj.object_id},
            "bucket": {"S": obj.bucket},
            "object_key": {"S": obj.key},
            "discriminator": {"S": f"{kind}:{value}"},
        }

    def _store_error(self, operation: str, exc: Exception) -> ClaimStoreError:
        if cut_by_deadline(exc):
            return ClaimStoreError(
                f"{operation} on {self._table}: {exc}", operation=operation, cause=exc, out_of_time=True
            )
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        if code in _PERMANENT_STORE_CODES:
            detail = str(exc.response.get("Error", {}).get("Message", "")) if isinstance(exc, ClientError) else ""
            self._broken = PermanentStoreError(
                f"{operation} on table {self._table!r} failed for good ({code}: {detail or 'no detail'}); "
                "check IDEMPOTENCY_TABLE_NAME and the function's DynamoDB permissions",
                operation=operation,
                cause=exc,
            )
            return self._broken
        return ClaimStoreError(f"{operation} on {self._table} failed ({code})", operation=operation, cause=exc)


def _out_of_rounds(what: str, last_error: ClaimStoreError | None) -> ClaimStoreError:
    """The deadline left no room for another round: the time ran out, whatever the last round said."""
    return ClaimStoreError(
        f"no time left for another round of {what} writes"
        + (f" (the last round: {last_error})" if last_error is not None else ""),
        operation="TransactWriteItems",
        cause=last_error,
        out_of_time=True,
    )


def _text(item: Mapping[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


# ------------------------------------------------------------------------------------------ deferrals


DEFERRALS_ATTRIBUTE = "DataAggregator.Deferrals"
FIRST_SENT_ATTRIBUTE = "DataAggregator.FirstSent"
_MAX_ATTRIBUTES = 10  # SQS's limit per message
_MAX_BATCH_ENTRIES = 10
_MAX_BATCH_BYTES = 256 * 1024  # SendMessageBatch's limit on the sum of its messages


class MessageRequeue:
    """Sends deferred messages back to the queue they came from: same body, same attributes, plus two.

    ``DataAggregator.Deferrals`` counts the deferrals and ``DataAggregator.FirstSent`` keeps the first
    send's time (epoch ms), so the handler can bound how often and for how long a message is deferred.
    The queue URL is built from the record's ``eventSourceARN`` on this client's own endpoint (the
    regional SQS endpoint, or the emulator's), so it needs no configuration and no GetQueueUrl call.
    """

    def __init__(self, client: SQSClient) -> None:
        self._client = client

    def send(self, deferrals: Sequence[Deferral]) -> set[str]:
        """Send every deferral; returns the ids of the messages that could not be sent (they must fail)."""
        unsent: set[str] = set()
        by_queue: dict[str, list[tuple[Deferral, SendMessageBatchRequestEntryTypeDef, int]]] = {}
        for deferral in deferrals:
            message = deferral.message
            url = self.queue_url(message.source_arn)
            entry = _batch_entry(deferral) if url is not None else None
            if url is None or entry is None:
                unsent.add(message.message_id)
                continue
            by_queue.setdefault(url, []).append((deferral, entry, _entry_bytes(entry)))
        for url, entries in by_queue.items():
            for chunk in _size_bounded(entries):
                unsent |= self._send_batch(url, chunk)
        return unsent

    def queue_url(self, arn: str | None) -> str | None:
        """``arn:aws:sqs:REGION:ACCOUNT:NAME`` -> the queue's URL on this client's endpoint."""
        parts = (arn or "").split(":")
        if len(parts) != 6 or parts[2] != "sqs" or not parts[4] or not parts[5]:
            return None
        return f"{self._client.meta.endpoint_url.rstrip('/')}/{parts[4]}/{parts[5]}"

    def _send_batch(
        self, url: str, chunk: Sequence[tuple[Deferral, SendMessageBatchRequestEntryTypeDef, int]]
    ) -> set[str]:
        ids = {entry["Id"]: deferral.message.message_id for deferral, entry, _ in chunk}
        try:
            response = self._client.send_message_batch(QueueUrl=url, Entries=[entry for _, entry, _ in chunk])
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            logger.warning(
                "sending deferred messages failed; they fail instead", extra={"queue_url": url, "code": code}
            )
            return set(ids.values())
        failed = {ids[item["Id"]] for item in response.get("Failed", []) if item.get("Id") in ids}
        if failed:
            codes = sorted({str(item.get("Code")) for item in response.get("Failed", [])})
            logger.warning("some deferred messages were refused; they fail instead", extra={"codes": codes})
        return failed


def _batch_entry(deferral: Deferral) -> SendMessageBatchRequestEntryTypeDef | None:
    """The message as SendMessageBatch takes it; None when its attributes leave no room for ours."""
    message = deferral.message
    attributes: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in message.attributes.items():
        if name in (DEFERRALS_ATTRIBUTE, FIRST_SENT_ATTRIBUTE):
            continue
        converted: MessageAttributeValueTypeDef = {"DataType": value.data_type}
        if value.string_value is not None:
            converted["StringValue"] = value.string_value
        if value.binary_value is not None:
            converted["BinaryValue"] = value.binary_value
        attributes[name] = converted
    if len(attributes) + 2 > _MAX_ATTRIBUTES:
        return None
    attributes[DEFERRALS_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(message.deferrals + 1)}
    if message.first_sent_ms is not None:
        attributes[FIRST_SENT_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(message.first_sent_ms)}
    return {
        "Id": "m",  # replaced by the position in its batch
        "MessageBody": message.body,
        "DelaySeconds": max(0, min(900, deferral.delay_seconds)),
        "MessageAttributes": attributes,
    }


def _entry_bytes(entry: SendMessageBatchRequestEntryTypeDef) -> int:
    """What SQS counts toward the size limits: the body and every attribute's name, type and value."""
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, value in entry.get("MessageAttributes", {}).items():
        payload = value.get("StringValue", "").encode("utf-8") + bytes(value.get("BinaryValue", b""))  # type: ignore[arg-type]
        size += len(name.encode("utf-8")) + len(value["DataType"].encode("utf-8")) + len(payload)
    return size


def _size_bounded(
    entries: Sequence[tuple[Deferral, SendMessageBatchRequestEntryTypeDef, int]],
) -> Iterator[list[tuple[Deferral, SendMessageBatchRequestEntryTypeDef, int]]]:
    """Batches of at most ten entries and 256 KiB in all, entry ids numbered within each batch."""
    chunk: list[tuple[Deferral, SendMessageBatchRequestEntryTypeDef, int]] = []
    total = 0
    for deferral, entry, size in entries:
        if chunk and (len(chunk) == _MAX_BATCH_ENTRIES or total + size > _MAX_BATCH_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append((deferral, {**entry, "Id": str(len(chunk))}, size))
        total += size
    if chunk:
        yield chunk
