"""A synthetic third party: uploads generated files to Landing at a steady rate.

The content is deterministic for a seed (so a failing run can be reproduced) and shaped like the real
feed: mostly small JSON-lines files, now and then a large one, and a few keys that are legal in S3
but awkward everywhere else (spaces, ``+``, ``%``, unicode, ``//``, ``..``, a leading ``/``, 1024
bytes). Every upload is recorded with its SHA-256 and completion time for the demo's reconciliation.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_KEY_BYTES = 1024
REGULAR_KEY_PREFIX = "incoming/"


@dataclass(frozen=True, slots=True)
class SizeMix:
    """How big generated files are: mostly small JSON lines, one in ``large_every`` large."""

    small_min: int = 1_000
    small_max: int = 120_000
    large_min: int = 1_000_000
    large_max: int = 4_000_000
    large_every: int = 50
    odd_every: int = 40

    def __post_init__(self) -> None:
        if not 0 <= self.small_min <= self.small_max:
            raise ValueError("small file sizes need 0 <= small_min <= small_max")
        if not 0 <= self.large_min <= self.large_max:
            raise ValueError("large file sizes need 0 <= large_min <= large_max")
        if self.large_every < 0 or self.odd_every < 0:
            raise ValueError("large_every and odd_every must be >= 0 (0 disables)")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One object as the uploader wrote it."""

    key: str
    size: int
    sha256: str
    etag: str
    version_id: str | None
    uploaded_at: float


def awkward_key(index: int) -> str:
    """Keys that break naive consumers, made unique by the index; nine variants in turn."""
    variants = [
        f"odd/with space/file {index}.json",
        f"odd/plus+sign/a+b+{index}.json",
        f"odd/percent/100%25 done %{index}.json",
        f"odd/ünïcødé/日本語-{index}.json",
        f"odd//double//slash-{index}.json",
        f"odd/../dot-dot-{index}.json",
        f"/leading-slash/{index}.json",
        f"odd/./dot/{index}.json",
    ]
    if index % (len(variants) + 1) == len(variants):
        stem = f"odd/long-{index}/"
        segment = "x" * 300 + "/"
        filler = (segment * 4)[: MAX_KEY_BYTES - len(stem.encode("utf-8")) - len(".json")]
        return (stem + filler).rstrip("/") + ".json"
    return variants[index % (len(variants) + 1)]


def generate(seed: int, mix: SizeMix) -> Iterator[tuple[str, bytes]]:
    """An endless, reproducible stream of (key, body)."""
    # Reproducible test content, not a secret (bandit B311 reviewed).
    rng = random.Random(seed)  # noqa: S311  # nosec B311
    index = 0
    while True:
        index += 1
        if mix.odd_every and index % mix.odd_every == 0:
            key = awkward_key(index // mix.odd_every)
        else:
            key = f"{REGULAR_KEY_PREFIX}sensor-{rng.randrange(16):02d}/{seed}/{index:07d}.jsonl"
        large = bool(mix.large_every) and index % mix.large_every == 0
        size = rng.randint(mix.large_min, mix.large_max) if large else rng.randint(mix.small_min, mix.small_max)
        yield key, json_lines(rng, index, size)


def json_lines(rng: random.Random, index: int, size: int) -> bytes:
    """``size`` bytes of sensor-like JSON lines; the hex blobs keep gzip from making them trivially small."""
    lines: list[bytes] = []
    total = 0
    row = 0
    while total < size:
        payload = rng.randbytes(min(256, max(1, (size - total) // 2))).hex()
        line = json.dumps({"file": index, "row": row, "reading": round(rng.uniform(-50, 50), 3), "blob": payload})
        encoded = line.encode("ascii") + b"\n"
        lines.append(encoded)
        total += len(encoded)
        row += 1
    return b"".join(lines)[:size]


class SyntheticUploader:
    """PutObject at ``rate`` files per second until ``count`` files or ``duration`` seconds."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        rate: float = 10.0,
        count: int | None = None,
        duration: float | None = None,
        mix: SizeMix | None = None,
        seed: int = 1,
        workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if count is None and duration is None:
            raise ValueError("give a count, a duration, or both")
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if duration is not None and duration < 0:
            raise ValueError(f"duration must be >= 0, got {duration}")
        self._s3 = s3
        self.bucket = bucket
        self.rate = rate
        self.count = count
        self.duration = duration
        self.mix = mix or SizeMix()
        self.seed = seed
        self.workers = workers
        self._clock = clock
        self._wall = wall_clock
        self.uploaded: list[UploadedFile] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()

    @property
    def planned(self) -> int | None:
        """How many files this run will upload, when known up front."""
        by_duration = None if self.duration is None else int(self.duration * self.rate)
        if self.count is None:
            return by_duration
        return self.count if by_duration is None else min(self.count, by_duration)

    def run(
        self, stop: threading.Event | None = None, on_upload: Callable[[UploadedFile], None] | None = None
    ) -> list[UploadedFile]:
        """Upload on schedule; returns every successful upload. Failed PUTs are recorded, not retried."""
        stop = stop or threading.Event()
        started = self._clock()
        slots = threading.BoundedSemaphore(self.workers * 4)  # back-pressure if the endpoint is slow
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="uploader") as pool:
            for sent, (key, body) in enumerate(generate(self.seed, self.mix)):
                if self.count is not None and sent >= self.count:
                    break
                due = started + sent / self.rate
                if self.duration is not None and due - started >= self.duration:
                    break
                if stop.wait(max(0.0, due - self._clock())):
                    break
                slots.acquire()
                future = pool.submit(self._put, key, body, on_upload)
                future.add_done_callback(lambda _f: slots.release())
                futures.append(future)
        return list(self.uploaded)

    def _put(self, key: str, body: bytes, on_upload: Callable[[UploadedFile], None] | None) -> None:
        try:
            response = self._s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        except Exception as exc:  # recorded and reported by the caller; the run goes on
            with self._lock:
                self.failures.append(f"{key}: {exc}")
            return
        record = UploadedFile(
            key=key,
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            etag=response["ETag"].strip('"'),
            version_id=response.get("VersionId"),
            uploaded_at=self._wall(),
        )
        with self._lock:
            self.uploaded.append(record)
        if on_upload is not None:
            on_upload(record)
