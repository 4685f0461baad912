"""Shared data shapes: the objects we bundle and the manifest we write.

Hot-path records are frozen dataclasses (cheap, hashable); the manifest, which crosses the boundary to
consumers and operators, is a pydantic model so that readers validate what they load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from data_aggregator.errors import ClaimStoreError

MANIFEST_MEMBER = "manifest.json"


@dataclass(frozen=True, slots=True)
class MessageAttribute:
    """One SQS message attribute, as SendMessage takes it back (binary values decoded)."""

    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """The parts of an SQS record the pipeline needs, including what it takes to send it again.

    ``deferrals`` and ``first_sent_ms`` come from the attributes a deferral adds (``Deferral``); a
    message S3 sent has neither, and its first send is its own ``SentTimestamp``.
    """

    message_id: str
    body: str
    receive_count: int = 1
    source_arn: str | None = None
    attributes: Mapping[str, MessageAttribute] = field(default_factory=dict)
    deferrals: int = 0
    first_sent_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Deferral:
    """A message to send again, unchanged but for the deferral count, after ``delay_seconds``."""

    message: InboundMessage
    delay_seconds: int


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One S3 object named by an ObjectCreated notification, with its key already decoded."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    event_time: str | None = None

    @property
    def discriminator(self) -> tuple[str, str]:
        """What tells two writes of the same key apart: versionId, else sequencer *and* eTag.

        The sequencer alone is not enough: some S3 implementations give every event the same one, and
        then two writes of one key in an unversioned bucket would share an identity and the second
        (newer) bytes would be skipped as a duplicate. Two writes with the same bytes share an eTag but
        not, on real S3, a sequencer; so the pair is distinct wherever either part is.
        """
        if self.version_id:
            return ("version", self.version_id)
        if self.sequencer and self.etag:
            return ("sequencer+etag", f"{self.sequencer}/{self.etag}")
        if self.sequencer:
            return ("sequencer", self.sequencer)
        if self.etag:
            return ("etag", self.etag)
        return ("none", "")

    @property
    def object_id(self) -> str:
        """Dedup key for the idempotency table.

        A hash of the canonical JSON of (bucket, key, discriminator): injective whatever the key holds,
        and always far below DynamoDB's 2048-byte partition-key limit, which a 1024-byte key percent-
        encoded would not be. The readable parts are stored next to it for operators.
        """
        kind, value = self.discriminator
        canonical = json.dumps([self.bucket, self.key, kind, value], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def event_datetime(self) -> datetime | None:
        """The notification's eventTime as an aware datetime (None when absent or unparseable)."""
        if not self.event_time:
            return None
        try:
            parsed = datetime.fromisoformat(self.event_time)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def describe(self) -> str:
        """Human-readable location for logs and error messages (never file content)."""
        suffix = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{suffix}"


class ManifestEntry(BaseModel):
    """One source file inside a bundle: where it came from and the SHA-256 of its bytes."""

    model_config = ConfigDict(frozen=True)

    member: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    event_time: str | None


class Manifest(BaseModel):
    """The last member of every bundle (SPEC §3)."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    bundle_id: str
    created_at: str
    files: list[ManifestEntry]

    def to_bytes(self) -> bytes:
        """Stable, human-readable JSON; non-ASCII keys stay readable (UTF-8)."""
        payload = self.model_dump(mode="json")
        return (json.dumps(payload, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def utc_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` suffix, the form S3 uses for eventTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ClaimStatus(StrEnum):
    """Outcome of trying to claim one object in the idempotency table."""

    CLAIMED = "CLAIMED"  # ours: IN_PROGRESS under our owner token (``pending_bundle_key`` may be inherited)
    DUPLICATE = "DUPLICATE"  # COMPLETED earlier: acknowledge, do not bundle again
    HELD = "HELD"  # IN_PROGRESS under a live lease of another invocation: retry later
    ERROR = "ERROR"  # the table could not tell us: retry later


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """One object's claim verdict.

    ``pending_bundle_key`` is set when we took over an expired claim whose previous owner had recorded
    that it was about to publish that bundle: the bundle may be in Archive, and must then be completed
    rather than the object bundled a second time.
    """

    status: ClaimStatus
    bundle_key: str | None = None
    error: ClaimStoreError | None = None
    pending_bundle_key: str | None = None
    lease_expires_at: int | None = None
    """For HELD: when the holder's lease runs out (epoch seconds), after which the claim can be taken."""
