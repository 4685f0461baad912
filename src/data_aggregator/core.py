"""Pure bundling logic: tar framing, compression, hashing, spooling, limits and the timeout guard.

Nothing here touches AWS, so every rule is testable with in-memory streams. The data path is a single
pass per byte: source chunk -> per-file SHA-256 -> tar framing -> gzip (ISA-L when importable) ->
whole-bundle SHA-256 -> ``SpooledTemporaryFile`` (memory up to a threshold, then ``/tmp``).

Tar framing is written here with ``TarInfo.tobuf`` (the stdlib encodes the PAX headers) rather than
through ``TarFile.addfile``, because ``addfile`` needs a file object that returns exactly the requested
byte count and copies every block once more; streaming chunks straight through keeps the hot path lean
and makes a short source an explicit, detectable error instead of a half-written member.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Protocol, Self, cast

from data_aggregator.models import MANIFEST_MEMBER, Manifest, ManifestEntry, SourceObject, utc_timestamp

try:  # ISA-L is ~10x faster than zlib at similar ratios; the output is plain gzip either way.
    from isal import igzip as _fast_gzip
    from isal import igzip_threaded as _threaded_gzip

    HAVE_ISAL = True
except ImportError:  # pragma: no cover - exercised only where the wheel is unavailable
    HAVE_ISAL = False

import gzip as _std_gzip

BLOCK_SIZE = tarfile.BLOCKSIZE
RECORD_SIZE = tarfile.RECORDSIZE
_NUL_BLOCK = b"\0" * BLOCK_SIZE
# ISA-L levels 0-3 map to zlib levels of a similar speed/ratio trade-off when ISA-L is missing.
_ZLIB_FALLBACK_LEVEL = {0: 1, 1: 1, 2: 3, 3: 6}
# Input block per compression task of the threaded writer. Each block is one hand-off between the
# caller and the worker, and ISA-L's writer keeps about five blocks alive (buffer, queue, the block in
# work, its output, the previous block as dictionary), so the block sets memory too. 512 KiB to 2 MiB
# measure alike within the machine's noise, 4 MiB is slower; 1 MiB keeps the memory worst case lowest
# of the fast ones (docs/performance.md, "Tuning grid: threaded-writer block size").
THREADED_BLOCK_BYTES = 1024 * 1024


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingSink:
    """Write-through to the spool while hashing, so the bundle's SHA-256 costs no second read."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        self._target.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """gzip writers call flush on their file object."""


class ShortReadError(Exception):
    """A member's source produced fewer or more bytes than it announced; the tar would be corrupt."""


def open_compressor(sink: Writable, level: int, threads: int = 0, block_bytes: int = THREADED_BLOCK_BYTES) -> IO[bytes]:
    """A gzip writer over ``sink``: ISA-L at ``level`` (0-3) when available, else zlib at a mapped level.

    With ``threads`` >= 1 ISA-L compresses on that many worker threads and a worker, not the caller,
    writes to ``sink`` (so the bundle hash and the spool writes move off the caller too). That overlaps
    with the caller's tar framing and per-file hashing when a second CPU is there, and costs a few
    percent when it is not. The stream is still one standard gzip member.
    """
    fileobj = cast(IO[bytes], sink)
    if HAVE_ISAL and threads > 0:
        threaded = _threaded_gzip.open(  # type: ignore[no-untyped-call]
            fileobj, "wb", compresslevel=level, threads=threads, block_size=block_bytes
        )
        return cast(IO[bytes], threaded)
    if HAVE_ISAL:
        writer = _fast_gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=level, mtime=0)  # type: ignore[no-untyped-call]
        return cast(IO[bytes], writer)
    return cast(
        IO[bytes],
        _std_gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=_ZLIB_FALLBACK_LEVEL[level], mtime=0),
    )


class BundleBody(Protocol):
    """What an upload needs of a bundle: its spooled bytes and their whole-object SHA-256."""

    @property
    def body(self) -> IO[bytes]: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256_hex(self) -> str: ...

    @property
    def sha256_b64(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """A bundle read back from Archive (to complete a previous owner's Distribution write), verified."""

    body: IO[bytes]
    size: int
    sha256_hex: str

    @property
    def sha256_b64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode("ascii")

    def close(self) -> None:
        self.body.close()


@dataclass(frozen=True, slots=True)
class BuiltBundle:
    """A finished, hashed bundle ready to upload; ``body`` is positioned at 0."""

    bundle_id: str
    created_at: datetime
    body: IO[bytes]
    size: int
    sha256_hex: str
    sha256_b64: str
    entries: tuple[ManifestEntry, ...]
    input_bytes: int

    def close(self) -> None:
        """Drop the spooled bytes (and the /tmp file if it spilled)."""
        self.body.close()


class BundleWriter:
    """Streams members into one .tar.gz bundle; ``finish`` appends the manifest and seals it.

    Use as a context manager: leaving the block without ``finish`` discards everything written, which
    is what an abandoned bundle needs. With ``compression_threads`` >= 1 the writer owns worker threads
    until ``finish`` or ``discard``, so one of them must always run (the context manager ensures it).
    """

    def __init__(
        self,
        *,
        bundle_id: str,
        created_at: datetime,
        compression_level: int = 1,
        compression_threads: int = 0,
        compression_block_bytes: int = THREADED_BLOCK_BYTES,
        spool_memory_bytes: int = 64 * 1024 * 1024,
        spool_dir: str | None = None,
    ) -> None:
        self.bundle_id = bundle_id
        self.created_at = created_at
        # Owned by the writer and then by BuiltBundle, whose close() releases it.
        self._spool: IO[bytes] = cast(
            IO[bytes],
            tempfile.SpooledTemporaryFile(max_size=spool_memory_bytes, dir=spool_dir),  # noqa: SIM115
        )
        self._sink = _HashingSink(self._spool)
        self._gzip = open_compressor(self._sink, compression_level, compression_threads, compression_block_bytes)
        self._tar_offset = 0
        self._entries: list[ManifestEntry] = []
        self._input_bytes = 0
        self._finished = False
        self._names: set[str] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._finished:
            self.discard()

    @property
    def member_count(self) -> int:
        return len(self._entries)

    @property
    def input_bytes(self) -> int:
        return self._input_bytes

    def add(self, source: SourceObject, *, member: str, size: int, chunks: Iterable[bytes]) -> ManifestEntry:
        """Append one member; ``chunks`` must yield exactly ``size`` bytes or the bundle is unusable.

        The header carries the size before the data, so a short source cannot be patched up afterwards:
        ``ShortReadError`` (or whatever the source raises) means the caller must discard the bundle.
        """
        if member in self._names or member == MANIFEST_MEMBER:
            raise ValueError(f"member name {member!r} is already used in this bundle")
        mtime = source.event_datetime or self.created_at
        self._write_header(member, size, mtime.timestamp())
        digest = hashlib.sha256()
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                raise ShortReadError(f"{source.describe()}: source yielded more than the {size} bytes announced")
            digest.update(chunk)
            self._gzip.write(chunk)
        if written != size:
            raise ShortReadError(f"{source.describe()}: source ended after {written} of {size} bytes")
        self._pad(size)
        self._names.add(member)
        self._input_bytes += size
        entry = ManifestEntry(
            member=member,
            bucket=source.bucket,
            key=source.key,
            version_id=source.version_id,
            etag=source.etag,
            size=size,
            sha256=digest.hexdigest(),
            event_time=source.event_time,
        )
        self._entries.append(entry)
        return entry

    def finish(self) -> BuiltBundle:
        """Write the manifest as the last member, close tar and gzip, and return the hashed bundle."""
        manifest = Manifest(
            bundle_id=self.bundle_id,
            created_at=utc_timestamp(self.created_at),
            files=list(self._entries),
        ).to_bytes()
        self._write_header(MANIFEST_MEMBER, len(manifest), self.created_at.timestamp())
        self._gzip.write(manifest)
        self._pad(len(manifest))
        # End of archive: two zero blocks, then pad to a whole record as tar(1) expects.
        end = 2 * BLOCK_SIZE
        self._gzip.write(b"\0" * end)
        self._tar_offset += end
        remainder = self._tar_offset % RECORD_SIZE
        if remainder:
            self._gzip.write(b"\0" * (RECORD_SIZE - remainder))
        self._gzip.close()
        self._spool.flush()
        self._spool.seek(0)
        self._finished = True
        digest = self._sink.digest.digest()
        return BuiltBundle(
            bundle_id=self.bundle_id,
            created_at=self.created_at,
            body=self._spool,
            size=self._sink.size,
            sha256_hex=digest.hex(),
            sha256_b64=base64.b64encode(digest).decode("ascii"),
            entries=tuple(self._entries),
            input_bytes=self._input_bytes,
        )

    def discard(self) -> None:
        """Throw the partial bundle away; nothing of it can be published.

        An error from closing the compressor (say the spool's disk filled up, reported late by a
        worker thread) says nothing about a bundle nobody will read, and raising it here would mask
        the error that made the caller discard; the threads and the spool are released either way.
        """
        self._finished = True
        try:
            with contextlib.suppress(Exception):
                self._gzip.close()
        finally:
            self._spool.close()

    def _write_header(self, name: str, size: int, mtime: float) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(mtime)
        info.mode = 0o644
        info.type = tarfile.REGTYPE
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._gzip.write(header)
        self._tar_offset += len(header)

    def _pad(self, size: int) -> None:
        self._tar_offset += size
        remainder = size % BLOCK_SIZE
        if remainder:
            self._gzip.write(_NUL_BLOCK[: BLOCK_SIZE - remainder])
            self._tar_offset += BLOCK_SIZE - remainder


def new_bundle_id(now: datetime) -> str:
    """Sortable by creation time, unique without coordination."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:16]}"


def bundle_key(prefix: str, created_at: datetime, bundle_id: str) -> str:
    """``{prefix}YYYY/MM/DD/HH/{bundle_id}.tar.gz`` in UTC (SPEC §3)."""
    return f"{prefix}{created_at.astimezone(UTC):%Y/%m/%d/%H}/{bundle_id}.tar.gz"


def plan_bundles(objects: Sequence[SourceObject], *, max_files: int, max_input_bytes: int) -> list[list[SourceObject]]:
    """Split objects, in order, into groups within the per-bundle limits.

    An object larger than ``max_input_bytes`` on its own still gets a bundle of its own (objects too
    large to bundle at all are rejected earlier, against MAX_OBJECT_BYTES). Unknown sizes count as 0;
    the real size from GET is what lands in the manifest.
    """
    groups: list[list[SourceObject]] = []
    current: list[SourceObject] = []
    current_bytes = 0
    for obj in objects:
        size = obj.size or 0
        if current and (len(current) >= max_files or current_bytes + size > max_input_bytes):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(obj)
        current_bytes += size
    if current:
        groups.append(current)
    return groups


#: What a claim-store request is assumed to cost before one is measured (DynamoDB: tens of ms). Never
#: carried over from an earlier invocation: an estimate that refused all work would never be measured
#: again, and the process would defer everything for as long as it lived.
ASSUMED_REQUEST_SECONDS = 0.1


@dataclass(slots=True)
class TimeoutGuard:
    """Decides whether there is still time to start more work and finish it cleanly.

    Lambda returns no partial response on timeout, so the whole batch would come back; instead we stop
    starting work when the remaining time, minus a reserve for commits and releases, cannot cover
    what the work still needs: moving ``pending_bytes`` through fetch, compression and both uploads at a
    conservative rate, plus the claim-store transactions still to make (claims, intent, commit).

    A transaction's cost is not configured but measured: the slowest one this invocation has seen
    (``observe_transaction``), assumed to be ``transaction_seconds`` until one is. On DynamoDB that is
    tens of milliseconds, on a loaded emulator seconds; either way a bundle is sealed when what it holds
    is all the invocation can still publish, so every invocation completes a share of its batch in
    proportion to its time instead of running out of it before the first bundle (docs/design.md).
    """

    remaining_seconds: Callable[[], float]
    reserve_seconds: float
    bytes_per_second: float
    transaction_seconds: float = ASSUMED_REQUEST_SECONDS
    stops: int = field(default=0)
    initial_seconds: float = field(default=0.0)
    _measured: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.initial_seconds = self.remaining_seconds()

    def needed_seconds(self, pending_bytes: int, transactions: int = 0) -> float:
        """Seconds that moving ``pending_bytes`` and making ``transactions`` take, reserve included."""
        return self.reserve_seconds + pending_bytes / self.bytes_per_second + transactions * self.transaction_seconds

    def can_start(self, pending_bytes: int, transactions: int = 0) -> bool:
        if self.remaining_seconds() > self.needed_seconds(pending_bytes, transactions):
            return True
        self.stops += 1
        return False

    def ever_fits(self, size: int) -> bool:
        """Could a whole invocation (as long as this one was at its start) move an object of ``size``?

        An object that cannot would be left for later by every invocation, for ever: it fails instead.
        Only the object's own bytes count here, never the measured claim-store time, which says how
        busy things are now, not what the object needs.
        """
        return self.initial_seconds > self.needed_seconds(size)

    def observe_transaction(self, seconds: float) -> None:
        """Plan with the slowest claim-store transaction seen in this invocation."""
        self.transaction_seconds = max(self.transaction_seconds, seconds) if self._measured else seconds
        self._measured = True


class Deadline:
    """When the invocation must have returned, and how much of that the current phase may spend.

    Lambda kills an invocation at its timeout and then returns no partial response, so every call the
    pipeline makes is bounded by this: the AWS facades cap each request's read timeout, retry sleeps
    and resumes at ``budget()`` and refuse to start a call when it is gone. While building and uploading
    (``working``) the reserve is kept back for what must still happen afterwards: commits, hand-overs
    and releases, which run ``finishing()`` and may use the reserve down to a small margin.
    """

    def __init__(
        self, remaining_seconds: Callable[[], float], *, reserve_seconds: float, margin_seconds: float = 1.0
    ) -> None:
        self._remaining = remaining_seconds
        self._reserve = reserve_seconds
        self._margin = margin_seconds
        self._finishing = False

    def budget(self) -> float:
        """Seconds a call started now may take."""
        left = self._remaining() - self._margin
        return left if self._finishing else left - self._reserve

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """Let the closing writes use the reserve."""
        previous, self._finishing = self._finishing, True
        try:
            yield
        finally:
            self._finishing = previous


_CURRENT_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


@contextlib.contextmanager
def bound_by(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the one every AWS call on this thread (and threads started from a copy of its
    context) is bounded by. A context variable, not a global: the sandbox runs several invocations at
    once in one process over shared clients."""
    token = _CURRENT_DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT_DEADLINE.reset(token)


def current_deadline() -> Deadline | None:
    return _CURRENT_DEADLINE.get()


class Stopwatch:
    """Monotonic elapsed time, for BundleBuildSeconds."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start
