"""Turn one SQS message body into the S3 objects it announces.

Powertools' S3 event models would be the first choice, but they require fields that emulators leave
out (``sequencer``, ``userIdentity``, ``requestParameters``...) and they do not decode keys. These
models accept both real and emulator-shaped notifications and validate exactly what we use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_aggregator.errors import PoisonMessageError
from data_aggregator.models import SourceObject

TEST_EVENT = "s3:TestEvent"
CREATED_PREFIX = "ObjectCreated:"


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


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What one SQS body holds: objects to bundle, plus what was deliberately not bundled.

    ``problems`` lists records we could not understand; the message then fails (and ends in the DLQ
    for a human) while its good records are still bundled, so nothing valid waits on a bad neighbour.
    """

    objects: tuple[SourceObject, ...] = ()
    is_test_event: bool = False
    ignored_records: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)

    def poison_error(self) -> PoisonMessageError | None:
        if not self.problems:
            return None
        return PoisonMessageError("unusable S3 notification: " + "; ".join(self.problems), operation="parse")


def parse_message(body: str) -> ParsedMessage:
    """Parse a body; a body that is not an S3 notification at all raises ``PoisonMessageError``."""
    try:
        payload: Any = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise PoisonMessageError(f"body is not JSON: {exc}", operation="parse") from None
    if not isinstance(payload, dict):
        raise PoisonMessageError(
            f"body is a JSON {type(payload).__name__}, expected an object with 'Records'", operation="parse"
        )
    if payload.get("Event") == TEST_EVENT:
        return ParsedMessage(is_test_event=True)
    records = payload.get("Records")
    if records is None:
        shown = ", ".join(sorted(str(k) for k in payload)[:8]) or "none"
        raise PoisonMessageError(
            f"not an S3 event notification: no 'Records' array (top-level keys: {shown})", operation="parse"
        )
    if not isinstance(records, list) or not records:
        raise PoisonMessageError("'Records' must be a non-empty array", operation="parse")

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
            objects.append(_to_source_object(record))
        except ValueError as exc:
            problems.append(f"record {index}: {exc}")
    return ParsedMessage(objects=tuple(objects), ignored_records=ignored, problems=tuple(problems))


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


def _to_source_object(record: S3RecordModel) -> SourceObject:
    obj = record.s3.object
    version = obj.versionId if obj.versionId and obj.versionId != "null" else None
    return SourceObject(
        bucket=record.s3.bucket.name,
        key=decode_key(obj.key),
        version_id=version,
        etag=obj.eTag.strip('"') if obj.eTag else None,
        size=obj.size,
        sequencer=obj.sequencer or None,
        event_time=record.eventTime,
    )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "record"
    return f"{where}: {error['msg']}"
