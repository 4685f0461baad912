"""Turn one SQS message body into the S3 objects it announces.

Three shapes reach the queue, depending on how a deployment routes S3's events:

* an **S3 event notification** (``{"Records": [...]}``), sent by S3 straight to the queue or through
  SNS with raw message delivery. Keys are form-encoded and decoded with ``unquote_plus``.
* an **SNS notification envelope** (S3 -> SNS -> SQS without raw delivery): ``Message`` holds the S3
  notification (or S3's test event) as a JSON string. Inside, the rules above apply unchanged.
* an **EventBridge event** (S3 -> EventBridge -> SQS): one object per event, its key **not** encoded.
  Decoding it would turn ``a+b`` into ``a b`` and fetch the wrong object, or none.

Powertools' S3 models would be the first choice, but they require fields that emulators leave out
(``sequencer``, ``userIdentity``, ``requestParameters``...), name the EventBridge ETag differently
from some emulators, and do not decode keys. These models accept both real and emulator-shaped
events and validate exactly what we use. Anything else is poison: it fails its own message only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from data_aggregator.errors import PoisonMessageError
from data_aggregator.models import SourceObject, utc_timestamp

TEST_EVENT = "s3:TestEvent"
CREATED_PREFIX = "ObjectCreated:"
SNS_NOTIFICATION = "Notification"
EVENTBRIDGE_SOURCE = "aws.s3"
EVENTBRIDGE_CREATED = "Object Created"
_SHOWN_KEYS = 8


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class S3BucketModel(_Lenient):
    name: Annotated[str, Field(min_length=1)]


class S3ObjectModel(_Lenient):
    key: Annotated[str, Field(min_length=1)]
    size: Annotated[int, Field(ge=0)] | None = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class S3EntityModel(_Lenient):
    bucket: S3BucketModel
    object: S3ObjectModel


class S3RecordModel(_Lenient):
    eventSource: str
    eventName: str
    eventTime: str | None = None
    s3: S3EntityModel


class EventBridgeObjectModel(_Lenient):
    """``detail.object`` of an S3 event on EventBridge (hyphenated names; the key is verbatim)."""

    key: Annotated[str, Field(min_length=1)]
    size: Annotated[int, Field(ge=0)] | None = None
    # S3 writes "etag"; moto writes "eTag", as in the notification shape.
    etag: str | None = Field(default=None, validation_alias=AliasChoices("etag", "eTag"))
    version_id: str | None = Field(default=None, validation_alias="version-id")
    sequencer: str | None = None


class EventBridgeDetailModel(_Lenient):
    bucket: S3BucketModel
    object: EventBridgeObjectModel


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What one SQS body holds: objects to bundle, plus what was deliberately not bundled.

    ``problems`` lists records we could not understand; the message then fails (and ends in the DLQ
    for a human) while its good records are still bundled, so nothing valid waits on a bad neighbour.
    ``via`` names the envelope the notification came in, so that such a failure says where to look.
    """

    objects: tuple[SourceObject, ...] = ()
    is_test_event: bool = False
    ignored_records: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)
    via: str = ""

    def poison_error(self) -> PoisonMessageError | None:
        if not self.problems:
            return None
        where = f" (via {self.via})" if self.via else ""
        return PoisonMessageError(f"unusable S3 notification{where}: " + "; ".join(self.problems), operation="parse")


def parse_message(body: str) -> ParsedMessage:
    """Parse a body of any supported shape; one that is none of them raises ``PoisonMessageError``."""
    try:
        payload: Any = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise _poison(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _poison(f"body is a JSON {type(payload).__name__}, expected an object")
    if _is_sns_envelope(payload):
        return _parse_sns(payload)
    parsed = _parse_unwrapped(payload, via="")
    if parsed is not None:
        return parsed
    raise _poison(
        f"unknown shape (top-level keys: {_keys(payload)}): not an S3 event notification ('Records'), "
        "an SNS notification ('Type', 'Message') or an EventBridge event ('source', 'detail-type', 'detail')"
    )


def _parse_unwrapped(payload: dict[str, Any], *, via: str) -> ParsedMessage | None:
    """The shapes that arrive alone or inside an SNS envelope; None when the payload is neither."""
    if _is_eventbridge_event(payload):
        return _parse_eventbridge(payload, via=via)
    if payload.get("Event") == TEST_EVENT or "Records" in payload:
        return _parse_notification(payload, via=via)
    return None


def _is_sns_envelope(payload: dict[str, Any]) -> bool:
    # "Records" wins: a notification that happens to carry a "Type" key is still a notification.
    return "Records" not in payload and "Type" in payload and ("Message" in payload or "TopicArn" in payload)


def _is_eventbridge_event(payload: dict[str, Any]) -> bool:
    return "Records" not in payload and ("detail-type" in payload or ("source" in payload and "detail" in payload))


def _parse_sns(envelope: dict[str, Any]) -> ParsedMessage:
    """Unwrap one SNS envelope; what it carries follows the rules of the unwrapped shapes."""
    topic = envelope.get("TopicArn")
    via = f"SNS topic {topic}" if isinstance(topic, str) and topic else "SNS"
    kind = envelope.get("Type")
    if kind != SNS_NOTIFICATION:
        hint = ": confirm the subscription with its SubscribeURL" if kind == "SubscriptionConfirmation" else ""
        raise _poison(f"SNS message of type {kind!r} from {via} is not a notification{hint}")
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise _poison(f"SNS notification without a 'Message' string (from {via})")
    try:
        inner: Any = json.loads(message)
    except json.JSONDecodeError as exc:
        raise _poison(f"SNS notification from {via}: 'Message' is not JSON ({exc})") from None
    if not isinstance(inner, dict):
        raise _poison(
            f"SNS notification from {via}: 'Message' is a JSON {type(inner).__name__}, not an S3 event notification"
        )
    if _is_sns_envelope(inner):
        # One envelope is what S3 -> SNS -> SQS produces; a second one means a relay we do not know.
        raise _poison(f"SNS notification from {via}: an SNS envelope inside an SNS envelope")
    parsed = _parse_unwrapped(inner, via=via)
    if parsed is not None:
        return parsed
    raise _poison(
        f"SNS notification from {via}: 'Message' is not an S3 event notification (top-level keys: {_keys(inner)})"
    )


def _parse_notification(payload: dict[str, Any], *, via: str) -> ParsedMessage:
    """S3's own notification shape: a test event, or records with form-encoded keys."""
    if payload.get("Event") == TEST_EVENT:
        return ParsedMessage(is_test_event=True, via=via)
    records = payload.get("Records")
    if not isinstance(records, list) or not records:
        where = f" (via {via})" if via else ""
        raise _poison(f"'Records' must be a non-empty array{where}")

    objects: list[SourceObject] = []
    problems: list[str] = []
    ignored = 0
    for index, raw in enumerate(records):
        try:
            record = S3RecordModel.model_validate(raw)
        except ValidationError as exc:
            problems.append(f"record {index}: {_first_error(exc)}")
            continue
        if record.eventSource != "aws:s3":
            problems.append(f"record {index}: eventSource {record.eventSource!r} is not 'aws:s3'")
            continue
        if not record.eventName.startswith(CREATED_PREFIX):
            ignored += 1
            continue
        try:
            objects.append(_record_to_source_object(record))
        except ValueError as exc:
            problems.append(f"record {index}: {exc}")
    return ParsedMessage(objects=tuple(objects), ignored_records=ignored, problems=tuple(problems), via=via)


def _parse_eventbridge(event: dict[str, Any], *, via: str) -> ParsedMessage:
    """One EventBridge event names one object; an event we cannot use fails its message as a whole."""
    where = f" (via {via})" if via else ""
    source = event.get("source")
    detail_type = event.get("detail-type")
    if source != EVENTBRIDGE_SOURCE:
        raise _poison(f"EventBridge event from source {source!r} ({detail_type!r}) is not an S3 event{where}")
    if not isinstance(detail_type, str):
        raise _poison(f"S3 EventBridge event without a 'detail-type' string{where}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise _poison(f"EventBridge event without a 'detail' object ({detail_type!r}){where}")
    if detail_type != EVENTBRIDGE_CREATED:
        # Deleted, restored, re-tagged...: nothing to bundle, like a non-ObjectCreated S3 record.
        return ParsedMessage(ignored_records=1, via=via)
    try:
        parsed = EventBridgeDetailModel.model_validate(detail)
    except ValidationError as exc:
        raise _poison(f"EventBridge {EVENTBRIDGE_CREATED!r} event: detail.{_first_error(exc)}{where}") from None
    obj = parsed.object
    source_object = SourceObject(
        bucket=parsed.bucket.name,
        key=obj.key,  # verbatim: the model already refused empty keys and unpaired surrogates
        version_id=_real_version(obj.version_id),
        etag=obj.etag.strip('"') if obj.etag else None,
        size=obj.size,
        sequencer=obj.sequencer or None,
        event_time=_event_time(event.get("time")),
    )
    return ParsedMessage(objects=(source_object,), via=via)


def decode_key(raw: str) -> str:
    """Undo S3's form encoding of keys (space as ``+``, UTF-8 as ``%xx``; emulators also encode ``/``)."""
    try:
        key = unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"key {raw!r} is not percent-encoded UTF-8 ({exc.reason})") from None
    if not key:
        raise ValueError("key is empty after decoding")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"key {raw!r} holds an unpaired surrogate; S3 keys are UTF-8") from None
    return key


def _record_to_source_object(record: S3RecordModel) -> SourceObject:
    obj = record.s3.object
    return SourceObject(
        bucket=record.s3.bucket.name,
        key=decode_key(obj.key),
        version_id=_real_version(obj.versionId),
        etag=obj.eTag.strip('"') if obj.eTag else None,
        size=obj.size,
        sequencer=obj.sequencer or None,
        event_time=record.eventTime,
    )


def _real_version(version_id: str | None) -> str | None:
    # An unversioned (or suspended) bucket reports the version "null": no identity, not a version.
    return version_id if version_id and version_id != "null" else None


def _event_time(value: object) -> str | None:
    """EventBridge's ``time`` as ISO-8601; some emulators send epoch seconds. An unusable time is dropped:
    it only feeds the manifest and the age metric, and is no reason to refuse the object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return utc_timestamp(datetime.fromtimestamp(value, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _poison(message: str) -> PoisonMessageError:
    return PoisonMessageError(message, operation="parse")


def _keys(payload: dict[str, Any]) -> str:
    return ", ".join(sorted(str(k) for k in payload)[:_SHOWN_KEYS]) or "none"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "record"
    return f"{where}: {error['msg']}"
