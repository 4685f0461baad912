"""Error taxonomy: every failure says whether a retry can help and carries its context.

The classification decides what operators see: a retryable error is expected to clear on redelivery
(throttling, a lease held by a live invocation, a broken stream); a non-retryable one (a poisoned body,
an object over the size limit) will keep failing until the message reaches the dead-letter queue, so it
is logged as an error and counted separately. The context (operation, bucket, key, cause) goes into
the structured log as-is; it never contains file content.

A second, independent flag says whether the failure was the invocation's lack of time rather than
anything wrong with the message or a dependency's answer (``out_of_time``): the guard left the work
for later, or a call was refused or cut short by the deadline. Such messages are deferred (sent again
and acknowledged) instead of failed, so a slow day never spends their receive count (docs/design.md,
"Deferral").
"""

from __future__ import annotations

from typing import ClassVar


class AggregatorError(Exception):
    """Base class: a failure with a retry classification and structured context."""

    default_retryable: ClassVar[bool] = True
    default_out_of_time: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        cause: BaseException | None = None,
        retryable: bool | None = None,
        out_of_time: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = self.default_retryable if retryable is None else retryable
        self.out_of_time = self.default_out_of_time if out_of_time is None else out_of_time
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.cause = cause

    def context(self) -> dict[str, str | bool]:
        """Fields for a structured log line (never the ``message`` key: stdlib logging reserves it)."""
        fields: dict[str, str | bool] = {
            "error_type": type(self).__name__,
            "error": str(self),
            "retryable": self.retryable,
        }
        if self.out_of_time:
            fields["out_of_time"] = True
        if self.operation:
            fields["operation"] = self.operation
        if self.bucket:
            fields["bucket"] = self.bucket
        if self.key is not None:
            fields["key"] = self.key
        if self.cause is not None:
            fields["cause"] = f"{type(self.cause).__name__}: {self.cause}"
        return fields


class ConfigError(AggregatorError):
    """A missing or invalid setting; the function cannot run until the deployment is fixed."""

    default_retryable = False


class PoisonMessageError(AggregatorError):
    """An SQS body that is not an S3 notification we understand; redelivery cannot fix it."""

    default_retryable = False


class ObjectTooLargeError(AggregatorError):
    """A single object above MAX_OBJECT_BYTES; it goes to the dead-letter queue for a human decision."""

    default_retryable = False


class ClaimHeldError(AggregatorError):
    """Another live invocation holds the object's lease; the message comes back after it finishes.

    Nothing is wrong with the message: it is deferred until the holder's lease would have run out.
    """

    def __init__(
        self,
        message: str,
        *,
        lease_expires_at: float | None = None,
        operation: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, bucket=bucket, key=key)
        self.lease_expires_at = lease_expires_at


class ClaimStoreError(AggregatorError):
    """The idempotency table could not be read or written after the SDK's own retries."""


class PermanentStoreError(ClaimStoreError):
    """The idempotency table refused a call in a way no retry fixes (missing table, access denied...).

    The invocation stops using the table at once, every affected message fails, and the metric
    ``ClaimStorePermanentErrors`` tells operators that the deployment, not the data, is wrong.
    """

    default_retryable = False


class FenceLostError(AggregatorError):
    """Our lease expired and another invocation took the claim over; it now owns the object's fate."""


class SizeMismatchError(AggregatorError):
    """The object read is not the size the event announced, though the read was pinned to that write.

    Redelivery cannot change what S3 holds for a version or ETag, so the message goes to the DLQ.
    """

    default_retryable = False


class FetchError(AggregatorError):
    """An object could not be read from Landing (after retries and Range resumes).

    Retryable by default; access denied or an archived storage class is not, and says so.
    """


class BundleAbandonedError(AggregatorError):
    """A bundle could not be completed (a member's stream broke for good); none of it is published."""


class UploadError(AggregatorError):
    """Writing a bundle to Archive or Distribution failed; nothing is committed."""


class DeadlineError(AggregatorError):
    """The timeout guard left this object for a later invocation; its claim was released."""

    default_out_of_time = True


class ObjectMissingError(AggregatorError):
    """The object was deleted (or overwritten in an unversioned bucket) before we read it.

    Not a failure of ours: the message is acknowledged, ObjectsMissing is counted and a warning logged.
    """

    default_retryable = False
