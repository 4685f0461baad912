"""``data-aggregator dlq``: list dead-lettered events and move them back to the event queue.

Listing must not lose or delay anything: messages are received with a short visibility timeout,
decoded, and made visible again at once (the DLQ has no redrive policy of its own, so the extra
receives cost nothing). Each message is decoded the way the function decodes it (S3 notification,
SNS envelope, EventBridge event), with keys URL-decoded, and classified: poison messages can never
succeed, S3 events name files that are not in any bundle yet.

Redrive has two paths. On AWS, ``StartMessageMoveTask`` moves the messages server-side (what the
console's "Start DLQ redrive" does). Endpoints without it (the local emulator, some SQS-compatible
services) get a client-side move: receive, send the same body and attributes to the source queue,
and only then delete from the DLQ, so a crash mid-way duplicates a message (which the function's
claims absorb) but never loses one. ``auto`` tries the move task and falls back when the endpoint
does not offer it: it uses the move task when the client talks to SQS itself and the copy
otherwise (an emulator answers the unknown action with retried server errors, not a clear code).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

from botocore.exceptions import ClientError

from data_aggregator.ops.awserrors import error_code

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef

LOOK_SECONDS = 30
BATCH = 10
UNSUPPORTED_CODES = frozenset(
    {"InvalidAction", "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "NotImplemented"}
)


class Method(StrEnum):
    """How to move messages back to the source queue."""

    AUTO = "auto"
    MOVE_TASK = "move-task"
    COPY = "copy"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One S3 object a dead-lettered event names."""

    bucket: str
    key: str
    version_id: str | None
    event_name: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message in the DLQ, decoded."""

    message_id: str
    receive_count: int
    sent_at: float | None
    failure_class: str
    detail: str
    objects: tuple[ObjectRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form for ``--json``."""
        return {
            "message_id": self.message_id,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at,
            "failure_class": self.failure_class,
            "detail": self.detail,
            "objects": [
                {"bucket": o.bucket, "key": o.key, "version_id": o.version_id, "event": o.event_name}
                for o in self.objects
            ],
        }

    def render(self, now: float) -> list[str]:
        """Lines for the listing: the message, then one line per object it names."""
        age = f"{(now - self.sent_at) / 3600:.1f} h old" if self.sent_at is not None else "age unknown"
        lines = [f"{self.message_id}  received {self.receive_count}x  {age}  {self.failure_class}: {self.detail}"]
        lines.extend(
            f"    s3://{o.bucket}/{o.key}"
            + (f"  version {o.version_id}" if o.version_id else "")
            + f"  ({o.event_name})"
            for o in self.objects
        )
        return lines


def _s3_record(record: dict[str, Any]) -> ObjectRef | None:
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        return None
    obj = s3.get("object") or {}
    return ObjectRef(
        bucket=str((s3.get("bucket") or {}).get("name", "")),
        key=unquote_plus(str(obj.get("key", ""))),
        version_id=obj.get("versionId") or None,
        event_name=str(record.get("eventName", "")),
    )


def _eventbridge(body: dict[str, Any]) -> ObjectRef | None:
    detail = body.get("detail")
    if body.get("source") != "aws.s3" or not isinstance(detail, dict):
        return None
    obj = detail.get("object") or {}
    return ObjectRef(
        bucket=str((detail.get("bucket") or {}).get("name", "")),
        key=str(obj.get("key", "")),  # EventBridge keys are not URL-encoded
        version_id=obj.get("version-id") or None,
        event_name=str(body.get("detail-type", "")),
    )


_NOT_BUNDLED = "not bundled yet: the cause is in the function's logs (runbook step 2)"


def classify(body_text: str) -> tuple[str, str, tuple[ObjectRef, ...]]:
    """(failure class, detail, objects) of one message body, as the function would see it."""
    try:
        body = json.loads(body_text)
    except ValueError:
        return "poison", f"body is not JSON: {body_text[:60]!r}", ()
    if isinstance(body, dict) and body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        return classify(body["Message"])  # SNS envelope without raw delivery
    if not isinstance(body, dict):
        return "poison", f"body is JSON but not an object: {body_text[:60]!r}", ()
    if body.get("Event") == "s3:TestEvent":
        return "test-event", "S3's test notification (safe to delete)", ()
    objects = _objects(body)
    if not objects:
        shape = (
            "no Records and not an EventBridge event (unknown shape)"
            if objects is None
            else "Records hold no S3 object"
        )
        return "poison", shape, ()
    return "s3-event", _NOT_BUNDLED, objects


def _objects(body: dict[str, Any]) -> tuple[ObjectRef, ...] | None:
    """The objects an event names; None when it is neither an S3 notification nor an EventBridge event."""
    bridged = _eventbridge(body)
    if bridged is not None:
        return (bridged,)
    records = body.get("Records")
    if not isinstance(records, list):
        return None
    return tuple(ref for ref in (_s3_record(r) for r in records if isinstance(r, dict)) if ref is not None)


def _decode(message: MessageTypeDef) -> DeadLetter:
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    failure_class, detail, objects = classify(message.get("Body", ""))
    return DeadLetter(
        message_id=message.get("MessageId", "?"),
        receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
        sent_at=int(sent) / 1000 if sent else None,
        failure_class=failure_class,
        detail=detail,
        objects=objects,
    )


@dataclass(slots=True)
class RedriveReport:
    """What a redrive did (or would do)."""

    method: Method
    moved: int = 0
    failed: list[str] = field(default_factory=list)
    task_handle: str | None = None
    dry_run: bool = False

    def render(self) -> str:
        """One summary line."""
        if self.dry_run:
            return f"dry run: {self.moved} message(s) would be moved back ({self.method.value}); nothing changed"
        if self.task_handle is not None:
            return (
                f"move task started ({self.task_handle}); SQS moves the messages server-side. "
                "Watch the DLQ drain with: data-aggregator dlq list"
            )
        failures = f", {len(self.failed)} failed: {'; '.join(self.failed[:5])}" if self.failed else ""
        return f"{self.moved} message(s) moved back ({self.method.value}){failures}"


class DeadLetterQueue:
    """One dead-letter queue and the queue its messages came from."""

    def __init__(self, sqs: SQSClient, dlq: str, *, source: str | None = None) -> None:
        self._sqs = sqs
        self.url = self._url(dlq)
        self._source = self._url(source) if source else None

    def _url(self, name_or_url: str) -> str:
        if name_or_url.startswith(("https://", "http://")):
            return name_or_url
        return self._sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"]

    def _arn(self, url: str) -> str:
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    @property
    def source_url(self) -> str:
        """The queue to redrive to: the one given, else the only queue that dead-letters here."""
        if self._source is None:
            sources = self._sqs.list_dead_letter_source_queues(QueueUrl=self.url).get("queueUrls", [])
            if len(sources) != 1:
                found = ", ".join(sources) or "none"
                raise ValueError(f"cannot tell which queue to redrive to (source queues found: {found}): give --to")
            self._source = sources[0]
        return self._source

    def depth(self) -> tuple[int, int]:
        """(visible, in flight) as SQS reports them (approximate)."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def _receive(self, visibility: int) -> list[MessageTypeDef]:
        return self._sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=BATCH,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _show_again(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), BATCH):
            chunk = messages[start : start + BATCH]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )

    def peek(self, limit: int | None = None) -> list[DeadLetter]:
        """Every message (up to ``limit``), decoded; all are visible again when this returns."""
        seen: dict[str, MessageTypeDef] = {}
        try:
            empty_looks = 0
            while (limit is None or len(seen) < limit) and empty_looks < 2:
                batch = [m for m in self._receive(LOOK_SECONDS) if m.get("MessageId") not in seen]
                empty_looks = 0 if batch else empty_looks + 1
                for message in batch:
                    seen[message["MessageId"]] = message
        finally:
            self._show_again(list(seen.values()))
        letters = [_decode(m) for m in seen.values()]
        return letters[:limit] if limit is not None else letters

    def redrive(
        self,
        *,
        method: Method = Method.AUTO,
        dry_run: bool = False,
        rate: int | None = None,
        on_move: Callable[[DeadLetter], None] | None = None,
    ) -> RedriveReport:
        """Move every message back to the source queue (see the module docstring for the paths)."""
        source = self.source_url
        if dry_run:
            letters = self.peek()
            return RedriveReport(method=method, moved=len(letters), dry_run=True)
        if method is Method.AUTO and not self.on_aws:
            method = Method.COPY  # emulators answer an unknown action with retried 500s, not a clear code
        if method in (Method.AUTO, Method.MOVE_TASK):
            try:
                return self._move_task(source, rate)
            except ClientError as exc:
                if method is Method.MOVE_TASK or error_code(exc) not in UNSUPPORTED_CODES:
                    raise
        return self._copy(source, on_move)

    @property
    def on_aws(self) -> bool:
        """True when the client talks to SQS itself (which has move tasks), not an emulator."""
        host = urlsplit(self._sqs.meta.endpoint_url).hostname or ""
        return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))

    def _move_task(self, source: str, rate: int | None) -> RedriveReport:
        request: dict[str, Any] = {"SourceArn": self._arn(self.url), "DestinationArn": self._arn(source)}
        if rate is not None:
            request["MaxNumberOfMessagesPerSecond"] = rate
        response = self._sqs.start_message_move_task(**request)
        return RedriveReport(method=Method.MOVE_TASK, task_handle=response.get("TaskHandle", "?"))

    def _copy(self, source: str, on_move: Callable[[DeadLetter], None] | None) -> RedriveReport:
        """Send, then delete: a message is in one queue or both, never in neither."""
        report = RedriveReport(method=Method.COPY)
        for batch in self._batches():
            entries: list[SendMessageBatchRequestEntryTypeDef] = []
            for i, message in enumerate(batch):
                entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(i), "MessageBody": message.get("Body", "")}
                if message.get("MessageAttributes"):
                    entry["MessageAttributes"] = message["MessageAttributes"]
                entries.append(entry)
            sent = self._sqs.send_message_batch(QueueUrl=source, Entries=entries)
            ok = {entry["Id"] for entry in sent.get("Successful", [])}
            report.failed.extend(f"{f['Id']}: {f.get('Message', f.get('Code'))}" for f in sent.get("Failed", []))
            done = [(i, m) for i, m in enumerate(batch) if str(i) in ok]
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in done],
                )
            report.moved += len(done)
            if on_move is not None:
                for _, message in done:
                    on_move(_decode(message))
            failed = [m for i, m in enumerate(batch) if str(i) not in ok]
            if failed:
                self._show_again(failed)
                break  # the source queue refuses: stop rather than spin on the same messages
        return report

    def _batches(self) -> Iterator[list[MessageTypeDef]]:
        empty_looks = 0
        while empty_looks < 2:
            batch = self._receive(LOOK_SECONDS * 4)
            if not batch:
                empty_looks += 1
                continue
            empty_looks = 0
            yield batch
