"""Shared data shapes: the objects we bundle and the manifest we write.

Hot-path records are frozen dataclasses (cheap, hashable); the manifest, which crosses the boundary to
consumers and operators, is a pydantic model so that readers validate what they load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_MEMBER = "manifest.json"
MANIFEST_SCHEMA_VERSION: Final = 1


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
        """What tells two writes of the same key apart (SPEC §3): versionId, else sequencer, else eTag."""
        if self.version_id:
            return ("version", self.version_id)
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
        canonical = json.dumps(
            [self.bucket, self.key, kind, value], ensure_ascii=False, separators=(",", ":")
        )
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

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
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
