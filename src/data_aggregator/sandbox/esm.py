"""An SQS event source mapping, emulated: poll, batch, invoke, delete what succeeded.

It reproduces the behaviour the handler relies on: batches up to a batch size or a batching window
(and Lambda's 6 MB payload limit), the standard Lambda SQS event shape, a context that reports the
remaining time, partial batch responses (``ReportBatchItemFailures``), and Lambda's rules for the
unhappy paths: a handler exception, an invalid response or a timeout fail the whole batch. Failed
messages are simply not deleted, so the queue's visibility timeout brings them back and its redrive
policy moves them to the dead-letter queue after ``maxReceiveCount`` receives, as in AWS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from data_aggregator.sandbox.context import LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
MAX_RECEIVE = 10
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_LONG_POLL_SECONDS = 20
SHORT_POLL_PAUSE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class MappingSettings:
    """The event source mapping's and the function's knobs that shape invocations."""

    batch_size: int = 100
    batching_window_seconds: float = 5.0
    function_timeout_seconds: float = 30.0
    function_name: str = "data-aggregator-dev-bundler"
    memory_mb: int = 1024
    region: str = "us-east-1"
    idle_wait_seconds: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"batch size must be 1..10000, got {self.batch_size}")
        if not 0 <= self.batching_window_seconds <= 300:
            raise ValueError(f"batching window must be 0..300 s, got {self.batching_window_seconds}")
        if self.batch_size > MAX_RECEIVE and self.batching_window_seconds <= 0:
            raise ValueError("a batch size above 10 needs a batching window of at least 1 s (as in Lambda)")
        if not 1 <= self.function_timeout_seconds <= 900:
            raise ValueError(f"function timeout must be 1..900 s, got {self.function_timeout_seconds}")
        if not 0 <= self.idle_wait_seconds <= MAX_LONG_POLL_SECONDS:
            raise ValueError(f"idle wait must be 0..20 s, got {self.idle_wait_seconds}")


@dataclass(frozen=True, slots=True)
class Invocation:
    """What happened to one batch."""

    request_id: str
    message_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    duration_seconds: float
    error: str | None = None

    @property
    def acknowledged(self) -> int:
        """Messages deleted from the queue."""
        return len(self.message_ids) - len(self.failed_ids)


@dataclass(slots=True)
class MappingStats:
    """Running totals, read by the demo's progress line."""

    invocations: int = 0
    messages: int = 0
    acknowledged: int = 0
    failed: int = 0
    errors: int = 0
    durations: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, invocation: Invocation) -> None:
        """Account one invocation (thread-safe)."""
        with self._lock:
            self.invocations += 1
            self.messages += len(invocation.message_ids)
            self.acknowledged += invocation.acknowledged
            self.failed += len(invocation.failed_ids)
            self.errors += invocation.error is not None
            self.durations.append(invocation.duration_seconds)


def lambda_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """Turn a ReceiveMessage entry into the record Lambda delivers for it."""
    attributes = message.get("Attributes", {})
    message_attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        converted: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = value["BinaryValue"]
        message_attributes[name] = converted
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", ""),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(response: object, message_ids: set[str]) -> set[str] | None:
    """Message ids the handler reported as failed; None when Lambda would treat the response as invalid.

    Lambda fails the whole batch when ``batchItemFailures`` is malformed or names an id that was not in
    the batch; an empty or missing list means every message succeeded.
    """
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed


class EventSourceMapping:
    """Polls one queue and invokes the handler with batches, on one or more poller threads."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        settings: MappingSettings | None = None,
        *,
        on_invocation: Callable[[Invocation], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.settings = settings or MappingSettings()
        self.on_invocation = on_invocation
        self.stats = MappingStats()
        self._clock = clock
        self._sleep = sleep
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # Bodies of the messages handed back (not deleted) and not acknowledged since: in flight in the
        # queue, invisible until their visibility timeout, so a report can still say what they name.
        self._handed_back: dict[str, str] = {}
        self._handed_back_lock = threading.Lock()

    def collect(self, stop: threading.Event | None = None) -> list[MessageTypeDef]:
        """One batch: wait for a first message, then fill until the batch size, window or payload cap."""
        settings = self.settings
        batch: list[MessageTypeDef] = []
        payload = 0
        deadline: float | None = None
        while len(batch) < settings.batch_size:
            if stop is not None and stop.is_set():
                break
            remaining = 0.0
            if deadline is None:
                wait = settings.idle_wait_seconds
            else:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                wait = min(MAX_LONG_POLL_SECONDS, int(remaining))  # SQS waits whole seconds only
            messages = self._receive(min(MAX_RECEIVE, settings.batch_size - len(batch)), wait, holding=bool(batch))
            if messages is None:
                break
            if not messages:
                if deadline is None:
                    return batch  # idle: let the caller check for stop
                if wait == 0:  # a sub-second rest of the window: short polls, gently
                    self._sleep(min(remaining, SHORT_POLL_PAUSE_SECONDS))
                continue
            if deadline is None:
                deadline = self._clock() + settings.batching_window_seconds
            for message in messages:
                payload += len(message["Body"].encode("utf-8"))
                batch.append(message)
            if payload >= MAX_PAYLOAD_BYTES * 0.9:
                break
        return batch

    def _receive(self, count: int, wait: int, *, holding: bool) -> list[MessageTypeDef] | None:
        """Receive up to ``count`` messages; None when the call failed while a batch was in hand.

        Messages already received are invisible to everyone else, so a failure mid-batch must not
        strand them until their visibility timeout: the caller invokes with what it has.
        """
        try:
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except Exception:
            if not holding:
                raise
            log.exception("receive failed while filling a batch; invoking with what was received")
            return None
        return response.get("Messages", [])

    def invoke(self, messages: list[MessageTypeDef]) -> Invocation:
        """Invoke the handler with one batch and delete what it acknowledged."""
        settings = self.settings
        records = [lambda_record(m, self.queue_arn, settings.region) for m in messages]
        ids = {r["messageId"] for r in records}
        context = LambdaContext(
            function_name=settings.function_name,
            memory_limit_in_mb=settings.memory_mb,
            region=settings.region,
            timeout_seconds=settings.function_timeout_seconds,
            clock=self._clock,
        )
        started = self._clock()
        error: str | None = None
        try:
            response = self.handler({"Records": records}, context)
        except Exception as exc:  # Lambda reports any escape as a failed invocation
            log.exception("handler raised; the whole batch will be retried")
            response, error = None, f"{type(exc).__name__}: {exc}"
        duration = self._clock() - started
        failed: set[str] | None
        if error is not None:
            failed = set(ids)
        elif context.timed_out:
            error, failed = f"timed out after {duration:.1f} s", set(ids)
        else:
            failed = failed_message_ids(response, ids)
            if failed is None:
                error, failed = f"invalid batch response: {response!r:.200}", set(ids)
        self._delete([m for m in messages if m["MessageId"] not in failed])
        with self._handed_back_lock:
            for message in messages:
                if message["MessageId"] in failed:
                    self._handed_back[message["MessageId"]] = message["Body"]
                else:
                    self._handed_back.pop(message["MessageId"], None)
        invocation = Invocation(
            request_id=context.aws_request_id,
            message_ids=tuple(r["messageId"] for r in records),
            failed_ids=tuple(sorted(failed)),
            duration_seconds=duration,
            error=error,
        )
        self.stats.add(invocation)
        if self.on_invocation is not None:
            self.on_invocation(invocation)
        return invocation

    def handed_back(self) -> list[str]:
        """Bodies of messages the function failed and nobody has acknowledged since (in flight or DLQ)."""
        with self._handed_back_lock:
            return list(self._handed_back.values())

    def poll_once(self, stop: threading.Event | None = None) -> Invocation | None:
        """Collect one batch and invoke; None when the queue was idle."""
        messages = self.collect(stop)
        return self.invoke(messages) if messages else None

    def _delete(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), MAX_RECEIVE):
            chunk = messages[start : start + MAX_RECEIVE]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                log.warning("delete failed (the message will be redelivered): %s", failure.get("Message"))

    # -- background pollers ------------------------------------------------------------------------

    def start(self, pollers: int = 1) -> None:
        """Run ``pollers`` concurrent poll-and-invoke loops in daemon threads."""
        self._stop.clear()
        for index in range(pollers):
            thread = threading.Thread(target=self._loop, name=f"esm-poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling; an invocation in progress finishes first."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(self._stop)
            except Exception:  # keep polling through emulator hiccups, as the real service does
                log.exception("poller error")
                self._stop.wait(1.0)
