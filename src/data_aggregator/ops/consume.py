"""``data-aggregator consume``: the reference on-premise consumer of the Distribution mailbox.

For each bundle: download to a partial file while hashing, compare with ``content-sha256``, scan and
extract into a private staging directory, optionally forward the files to an S3-compatible store,
move the staging directory into place, and only then delete the bundle from Distribution.

Restart safety comes from that order. A crash at any point leaves the bundle in Distribution, so the
next run processes it again (at-least-once); partial files and staging directories are private to
the consumer and are discarded on start, and an already-extracted copy is replaced, never merged.
A bundle whose content is wrong is left in Distribution and not retried until its object changes
(an operator replay writes a new version), so one bad bundle cannot stall the mailbox.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator.models import MANIFEST_MEMBER, Manifest, ManifestEntry
from data_aggregator.ops.bundles import scan_bundle, unsafe_member_reason
from data_aggregator.ops.extract import SafeExtractor
from data_aggregator.ops.hashing import HashingReader, hex_to_b64
from data_aggregator.ops.verify import BUNDLE_SUFFIX, expected_digest_problem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

STATE_DIR = ".consumer"
_BUNDLE_PATH = re.compile(r"(?:^|/)(\d{4}/\d{2}/\d{2}/\d{2}/[^/]+)\.tar\.gz$")
MAX_METADATA_VALUE = 1024


class BundleRejectedError(Exception):
    """The bundle's content is wrong; retrying the same object cannot help."""

    def __init__(self, key: str, problems: list[str]) -> None:
        super().__init__(f"{key}: " + "; ".join(problems))
        self.key = key
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ConsumedBundle:
    """A bundle that was verified, extracted (and forwarded) and then deleted from Distribution."""

    key: str
    bundle_id: str
    sha256: str
    size: int
    directory: Path
    files: tuple[ManifestEntry, ...]
    first_seen: float
    forwarded: int


@dataclass(frozen=True, slots=True)
class RejectedBundle:
    """A bundle left in Distribution because its content failed verification."""

    key: str
    etag: str
    problems: tuple[str, ...]


@dataclass(slots=True)
class PollResult:
    """What one pass over the mailbox did."""

    consumed: list[ConsumedBundle] = field(default_factory=list)
    rejected: list[RejectedBundle] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: int = 0


class BundleForwarder:
    """Uploads extracted files to an S3-compatible store (for example MinIO) before the bundle is deleted.

    Objects are named ``prefix + member`` (the safe relative name, which every S3-compatible server
    accepts) and carry their SHA-256 as ``ChecksumSHA256`` so that the receiving store checks them.
    """

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def forward(self, manifest: Manifest, directory: Path) -> int:
        """Upload every file of one extracted bundle; raises on the first failure."""
        for entry in manifest.files:
            metadata = {
                "bundle-id": manifest.bundle_id,
                "content-sha256": entry.sha256,
                "source-bucket": entry.bucket,
            }
            source_key = quote(entry.key, safe="/")
            if len(source_key) <= MAX_METADATA_VALUE:
                metadata["source-key"] = source_key
            with (directory / entry.member).open("rb") as body:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + entry.member,
                    Body=body,
                    ChecksumSHA256=hex_to_b64(entry.sha256),
                    Metadata=metadata,
                )
        return len(manifest.files)


def _token(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Consumer:
    """Polls one Distribution bucket (under a prefix) and consumes its bundles into ``target``."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        target: Path,
        *,
        prefix: str = "bundles/",
        forwarder: BundleForwarder | None = None,
        durable: bool = True,
        on_consumed: Callable[[ConsumedBundle], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.target = target
        self.forwarder = forwarder
        self.durable = durable
        self.on_consumed = on_consumed
        self._clock = clock
        self._state = target / STATE_DIR
        self._first_seen: dict[str, float] = {}
        self._rejected: dict[str, str] = {}  # key -> ETag of the object that failed
        self.recover()

    def recover(self) -> None:
        """Discard partial downloads and half-built extractions left by a crash; they will be redone."""
        for name in ("incoming", "staging", "trash"):
            shutil.rmtree(self._state / name, ignore_errors=True)
            (self._state / name).mkdir(parents=True, exist_ok=True)

    def bundle_directory(self, key: str) -> Path:
        """Where a bundle's files land: ``YYYY/MM/DD/HH/<bundle_id>`` from its key, whatever the prefix."""
        match = _BUNDLE_PATH.search(key)
        relative = match.group(1) if match else ""
        if not relative or unsafe_member_reason(relative) is not None:
            relative = f"unusual-keys/{_token(key)}"
        return self.target.joinpath(*relative.split("/"))

    def pending(self) -> list[tuple[str, str]]:
        """(key, ETag) of every bundle currently in the mailbox, oldest key first."""
        found: list[tuple[str, str]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        now = self._clock()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith(BUNDLE_SUFFIX):
                    continue
                self._first_seen.setdefault(key, now)
                found.append((key, item["ETag"]))
        found.sort()
        return found

    def poll_once(self, max_bundles: int | None = None) -> PollResult:
        """Consume what is in the mailbox now; never raises for one bad or unreachable bundle."""
        result = PollResult()
        try:
            pending = self.pending()
        except (ClientError, BotoCoreError) as exc:
            result.errors.append(f"listing s3://{self.bucket}/{self.prefix} failed: {exc}")
            log.warning("listing failed: %s", exc)
            return result
        for key, etag in pending:
            if max_bundles is not None and len(result.consumed) >= max_bundles:
                break
            if self._rejected.get(key) == etag:
                result.skipped += 1
                continue
            try:
                consumed = self.consume(key, etag)
            except BundleRejectedError as exc:
                self._rejected[key] = etag
                result.rejected.append(RejectedBundle(key, etag, tuple(exc.problems)))
                continue
            except (ClientError, BotoCoreError, OSError) as exc:
                result.errors.append(f"{key}: {exc}")
                log.warning("bundle %s not consumed this time: %s", key, exc)
                continue
            if consumed is None:
                continue
            result.consumed.append(consumed)
            if self.on_consumed is not None:
                self.on_consumed(consumed)
        for rejected in result.rejected:
            log.error("bundle %s rejected, left in Distribution: %s", rejected.key, "; ".join(rejected.problems))
        return result

    def run(
        self,
        stop: threading.Event,
        *,
        interval: float = 10.0,
        once: bool = False,
        max_bundles: int | None = None,
        on_poll: Callable[[PollResult], None] | None = None,
    ) -> PollResult:
        """Poll until ``stop`` is set (or once); returns the totals over all polls."""
        totals = PollResult()
        while not stop.is_set():
            remaining = None if max_bundles is None else max_bundles - len(totals.consumed)
            result = self.poll_once(remaining)
            totals.consumed.extend(result.consumed)
            totals.rejected.extend(result.rejected)
            totals.errors.extend(result.errors)
            totals.skipped += result.skipped
            if on_poll is not None:
                on_poll(result)
            if once or (remaining is not None and len(result.consumed) >= remaining):
                break
            stop.wait(interval)
        return totals

    def consume(self, key: str, etag: str) -> ConsumedBundle | None:
        """Process one bundle end to end; None when it vanished before we read it."""
        token = _token(key)
        part = self._state / "incoming" / f"{token}.tar.gz.part"
        staging = self._state / "staging" / token
        try:
            try:
                response = self._s3.get_object(Bucket=self.bucket, Key=key, IfMatch=etag)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    self._first_seen.pop(key, None)
                    return None
                raise
            expected, problem = expected_digest_problem(response.get("Metadata", {}))
            if problem is not None or expected is None:
                raise BundleRejectedError(key, [problem or "no expected digest"])
            reader = HashingReader(response["Body"])
            with part.open("wb") as sink:
                while chunk := reader.read(1024 * 1024):
                    sink.write(chunk)
                if self.durable:
                    sink.flush()
                    os.fsync(sink.fileno())
            if reader.hexdigest() != expected:
                raise BundleRejectedError(
                    key,
                    [f"downloaded bytes hash to {reader.hexdigest()}, content-sha256 metadata says {expected}"],
                )

            shutil.rmtree(staging, ignore_errors=True)
            extractor = SafeExtractor(staging, durable=self.durable)
            with part.open("rb") as handle:
                report = scan_bundle(
                    handle,
                    source=f"s3://{self.bucket}/{key}",
                    expected_sha256=expected,
                    open_member=extractor,
                )
            if not report.ok or report.manifest is None:
                raise BundleRejectedError(key, report.problems or ["no manifest"])
            manifest = report.manifest
            (staging / MANIFEST_MEMBER).write_bytes(manifest.to_bytes())

            forwarded = self.forwarder.forward(manifest, staging) if self.forwarder is not None else 0
            directory = self.bundle_directory(key)
            self._publish(staging, directory)
            self._s3.delete_object(Bucket=self.bucket, Key=key)
            log.info("consumed %s: %d files into %s", key, len(manifest.files), directory)
            return ConsumedBundle(
                key=key,
                bundle_id=manifest.bundle_id,
                sha256=expected,
                size=reader.bytes_read,
                directory=directory,
                files=tuple(manifest.files),
                first_seen=self._first_seen.pop(key, self._clock()),
                forwarded=forwarded,
            )
        finally:
            part.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)

    def _publish(self, staging: Path, directory: Path) -> None:
        """Move a complete extraction into place, replacing any copy left by an earlier attempt."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        if directory.exists():
            trash = self._state / "trash" / f"{_token(str(directory))}-{time.monotonic_ns()}"
            directory.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        staging.rename(directory)
        if self.durable:
            _fsync_dir(directory.parent)
