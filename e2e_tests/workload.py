"""What a scenario sends into the pipeline: files (by many threads), deletions, and poison messages.

Content is deterministic for a scenario's seed, so a failing run can be repeated byte for byte. Files
above a few MiB are generated into a temporary file while they are hashed and uploaded from there:
the runner's own memory must stay small even for the large-file scenario, whose point is to show that
the pipeline's does.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from data_aggregator.sandbox.harness import s3_event_body, sns_envelope
from data_aggregator.sandbox.uploader import UploadedFile, awkward_key, json_lines
from e2e_tests.config import DEAD_LETTER_KINDS, FileGroup, PoisonKind, ScenarioConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

IN_MEMORY_MAX = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
# Keys beyond the sandbox's awkward set: characters with a meaning in URLs, and a control character.
_EXTRA_AWKWARD = (
    "odd/query?and#hash-{n}.json",
    "odd/emoji-\U0001f600-{n}.json",
    "odd/trailing space -{n}.json",
    "odd/tab\tin-key-{n}.json",
    "odd/encoded-slash%2Fnot-a-folder-{n}.json",
)


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One object to write (all its versions), with everything needed to regenerate its bytes."""

    key: str
    group: FileGroup
    sizes: tuple[int, ...]
    seed: int

    @property
    def delete_after_upload(self) -> bool:
        """Whether the object is deleted again right after its upload."""
        return self.group.delete_after_upload


def plan_files(config: ScenarioConfig, prefix: str) -> list[PlannedFile]:
    """Every object of the scenario, keys under ``prefix`` (awkward keys keep their oddity after it)."""
    rng = random.Random(config.seed)  # reproducible test content, not a secret
    planned: list[PlannedFile] = []
    awkward = 0
    for group_index, group in enumerate(config.upload.files):
        for index in range(group.count):
            if group.keys == "awkward":
                key = _awkward(awkward, prefix)
                awkward += 1
            else:
                key = f"{prefix}g{group_index}/sensor-{index % 16:02d}/{index:06d}.{_extension(group)}"
            top = group.size_max if group.size_max is not None else group.size
            sizes = tuple(rng.randint(group.size, top) for _ in range(group.versions))
            planned.append(PlannedFile(key=key, group=group, sizes=sizes, seed=rng.getrandbits(32)))
    return planned


def _extension(group: FileGroup) -> str:
    return {"random": "bin", "jsonl": "jsonl", "compressible": "log"}[group.content]


def _awkward(index: int, prefix: str) -> str:
    """The sandbox's nine awkward variants in turn, then a few more; leading '/' kept where it is the point."""
    cycle = 9 + len(_EXTRA_AWKWARD)
    variant = index % cycle
    if variant < 9:
        key = awkward_key(index // cycle * 9 + variant)
        if key.startswith("/"):
            return "/" + prefix + key.lstrip("/")
        # The long variant is already at S3's 1024-byte limit; the prefix goes in place of its filler.
        if len((prefix + key).encode("utf-8")) > 1024:
            return (prefix + key)[: -len(".json")].encode("utf-8")[: 1024 - len(".json")].decode(
                "utf-8", "ignore"
            ) + ".json"
        return prefix + key
    return prefix + _EXTRA_AWKWARD[variant - 9].format(n=index)


def content_chunks(kind: str, size: int, seed: int) -> Iterator[bytes]:
    """``size`` bytes of the given kind, in chunks of at most 1 MiB, the same for the same seed."""
    rng = random.Random(seed)  # reproducible test content, not a secret
    left = size
    row = 0
    while left > 0:
        take = min(_CHUNK, left)
        if kind == "random":
            chunk = rng.randbytes(take)
        elif kind == "jsonl":
            chunk = json_lines(rng, seed % 100_000, take)
        else:
            chunk = _log_lines(rng, row, take)
            row += take // 60 + 1
        left -= len(chunk)
        yield chunk


def _log_lines(rng: random.Random, first_row: int, size: int) -> bytes:
    """Log-like text that compresses well, as most real feeds do."""
    lines: list[bytes] = []
    total = 0
    row = first_row
    while total < size:
        status = "OK" if rng.random() < 0.97 else "DEGRADED"
        line = f"2026-11-22T10:{row // 60 % 60:02d}:{row % 60:02d}Z INFO sensor-{row % 16:02d} status={status}\n"
        encoded = line.encode("ascii")
        lines.append(encoded)
        total += len(encoded)
        row += 1
    return b"".join(lines)[:size]


@contextmanager
def body_of(kind: str, size: int, seed: int, spool_dir: Path) -> Iterator[tuple[IO[bytes] | bytes, str]]:
    """The body to upload and its SHA-256; large bodies come from a temporary file, never from memory."""
    digest = hashlib.sha256()
    if size <= IN_MEMORY_MAX:
        data = b"".join(content_chunks(kind, size, seed))
        digest.update(data)
        yield data, digest.hexdigest()
        return
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        for chunk in content_chunks(kind, size, seed):
            digest.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        yield spool, digest.hexdigest()


@dataclass(slots=True)
class UploadResult:
    """What the third party did: every object written (and which were deleted again)."""

    uploaded: list[UploadedFile] = field(default_factory=list)
    deleted: list[UploadedFile] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0

    @property
    def expected(self) -> list[UploadedFile]:
        """The uploads that must arrive: everything not deleted right after it was written."""
        gone = {(u.key, u.version_id, u.sha256) for u in self.deleted}
        return [u for u in self.uploaded if (u.key, u.version_id, u.sha256) not in gone]


class Uploader:
    """Writes the planned files with a pool of threads, at an optional overall rate."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        threads: int,
        rate: float | None,
        spool_dir: Path,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.threads = threads
        self.rate = rate
        self.spool_dir = spool_dir
        self._clock = clock
        self._wall = wall_clock
        self.result = UploadResult()
        self._lock = threading.Lock()

    @property
    def done(self) -> int:
        """Objects written so far."""
        with self._lock:
            return len(self.result.uploaded)

    def run(self, planned: list[PlannedFile]) -> UploadResult:
        """Upload everything (versions of one key in order); returns when all are written."""
        started = self._clock()
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="e2e-upload") as pool:
            for index, item in enumerate(planned):
                if self.rate is not None:
                    time.sleep(max(0.0, started + index / self.rate - self._clock()))
                pool.submit(self._write, item)
        return self.result

    def _write(self, item: PlannedFile) -> None:
        for version, size in enumerate(item.sizes):
            try:
                with body_of(item.group.content, size, item.seed + version, self.spool_dir) as (body, sha256):
                    response = self._s3.put_object(Bucket=self.bucket, Key=item.key, Body=body, ContentLength=size)
                version_id = response.get("VersionId")
                record = UploadedFile(
                    key=item.key,
                    size=size,
                    sha256=sha256,
                    etag=response["ETag"].strip('"'),
                    version_id=version_id if version_id and version_id != "null" else None,
                    uploaded_at=self._wall(),
                )
                if item.delete_after_upload:
                    if record.version_id:
                        self._s3.delete_object(Bucket=self.bucket, Key=item.key, VersionId=record.version_id)
                    else:
                        self._s3.delete_object(Bucket=self.bucket, Key=item.key)
            except Exception as exc:  # reported as a failed check; the rest of the upload goes on
                with self._lock:
                    self.result.failures.append(f"{item.key!r}: {type(exc).__name__}: {exc}")
                return
            with self._lock:
                self.result.uploaded.append(record)
                self.result.bytes_uploaded += size
                if item.delete_after_upload:
                    self.result.deleted.append(record)


def s3_record(upload: UploadedFile, bucket: str, region: str) -> dict[str, object]:
    """A notification record for an uploaded object, shaped like S3's (key, size, ETag, version)."""
    record: dict[str, object] = json.loads(s3_event_body(upload, bucket, region, datetime.now(UTC)))["Records"][0]
    return record


def poison_body(
    kind: PoisonKind, index: int, marker: str, *, good: UploadedFile | None, bucket: str, region: str
) -> str:
    """A message body of the given kind, unique through ``marker`` and ``index`` so it can be recognised."""
    tag = f"{marker}-{index}"
    if kind == "not_json":
        return f"this body is not JSON ({tag})"
    if kind == "good_and_bad_records":
        if good is None:
            raise ValueError("poison 'good_and_bad_records' needs an uploaded file to point at")
        broken = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}}}
        return json.dumps({"Records": [s3_record(good, bucket, region), broken], "tag": tag})
    removed = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": bucket}, "object": {"key": f"removed/{tag}.json"}},
    }
    payloads: dict[str, object] = {
        "json_array": [tag, 1, 2, 3],
        "no_records": {"unexpected": "shape", "tag": tag},
        "records_not_a_list": {"Records": "not a list", "tag": tag},
        "foreign_event_source": {
            "Records": [{"eventSource": "aws:kinesis", "eventName": "ObjectCreated:Put", "s3": {}}],
            "tag": tag,
        },
        "test_event": {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket, "tag": tag},
        "non_created_event": {"Records": [removed], "tag": tag},
        "eventbridge_no_key": _eventbridge_event(
            "Object Created", {"size": 3}, reason="PutObject", bucket=bucket, region=region, tag=tag
        ),
        "eventbridge_object_deleted": _eventbridge_event(
            "Object Deleted",
            {"key": f"removed/{tag}.json", "sequencer": "00617F0829932A0B22"},
            reason="DeleteObject",
            bucket=bucket,
            region=region,
            tag=tag,
        ),
    }
    topic = f"arn:aws:sns:{region}:123456789012:{bucket}-events"
    when = datetime.now(UTC)
    if kind == "sns_not_s3":  # someone publishing by hand to the topic S3 notifies
        return sns_envelope(f"maintenance window tonight ({tag})", topic, region, when)
    if kind == "sns_test_event":
        return sns_envelope(json.dumps(payloads["test_event"]), topic, region, when)
    return json.dumps(payloads[kind])


def _eventbridge_event(
    detail_type: str, obj: dict[str, object], *, reason: str, bucket: str, region: str, tag: str
) -> dict[str, object]:
    return {
        "version": "0",
        "id": tag,
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj, "reason": reason},
    }


def expected_dead_letters(bodies: list[tuple[PoisonKind, str]]) -> list[str]:
    """The bodies that must end in the dead-letter queue."""
    return [body for kind, body in bodies if kind in DEAD_LETTER_KINDS]
