"""``data-aggregator consume``: the reference on-premise consumer of the Distribution mailbox.

For each bundle: download to a partial file while hashing, compare with ``content-sha256``, scan and
extract into a private staging directory, optionally forward the files to an S3-compatible store,
move the staging directory into place, and only then delete the bundle from Distribution.

Restart safety comes from that order. A crash at any point leaves the bundle in Distribution, so the
next run processes it again (at-least-once); partial files and staging directories are private to
the consumer and are discarded on start, and an already-extracted copy is replaced, never merged.

One consumer per target: the consumer holds an exclusive ``flock`` on ``TARGET/.consumer/lock`` for
its lifetime, and a second one on the same target refuses to start (:class:`ConsumerBusyError`)
instead of sharing the work paths, which would let one wipe the other's verified extraction. The
lock dies with the process, so a crash never leaves a stale lock behind.

A bundle whose content is wrong, or that cannot be written to this filesystem for a reason that
will not go away (a name too long for it, for example), is rejected: left in Distribution, recorded
in ``TARGET/.consumer/rejected.json`` with its ETag and reasons, reported once, and not retried until
its object changes (an operator replay writes a new version). The bundles behind it are consumed as
usual, so one bad bundle cannot stall the mailbox. Errors of the local storage as a whole (disk full,
permissions, read-only) end the pass instead: every other bundle would fail the same way.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator.models import MANIFEST_MEMBER, Manifest, ManifestEntry
from data_aggregator.ops.awserrors import is_configuration_error
from data_aggregator.ops.bundles import DEFAULT_LIMITS, ExpansionLimits, scan_bundle, unsafe_member_reason
from data_aggregator.ops.extract import SafeExtractor
from data_aggregator.ops.hashing import HashingReader, hex_to_b64
from data_aggregator.ops.verify import BUNDLE_SUFFIX, expected_digest_problem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

STATE_DIR = ".consumer"
_BUNDLE_PATH = re.compile(r"(?:^|/)(\d{4}/\d{2}/\d{2}/\d{2}/[^/]+)\.tar\.gz$")
MAX_METADATA_VALUE = 1024
LOCK_FILE = "lock"
REJECTED_FILE = "rejected.json"
FORWARD_ATTEMPTS = 5
ATTEMPTS_FILE = "attempts.json"
MAX_ATTEMPTS = 3
MAX_STORE_KEY_BYTES = 1024
# Store keys starting with '%' are reserved for the escaped forms: no source key is forwarded as it is
# there. Inside them '%' (so that the escaping is reversible) and control characters (which S3's XML
# listings cannot carry) are percent-escaped.
_STORE_ESCAPE = re.compile(r"[%\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ESCAPED_DIRECTORY = "%/"
LONG_KEY_DIRECTORY = "%%long/"

# A bundle that hits one of these while it is written out would hit it again on every retry.
PERMANENT_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL, errno.EILSEQ, errno.ELOOP}
    | {errno.EMLINK, errno.EFBIG}
)


class ConsumerBusyError(Exception):
    """Another consumer holds the target directory; this one must not start."""


class LocalStorageError(Exception):
    """The target's filesystem fails as a whole (full, read-only, no permission): stop this pass."""


class TargetMisconfiguredError(Exception):
    """Something under the target is not what the consumer created (a symlink, a file): refuse to write.

    Not an :class:`OSError` on purpose, so that it is never mistaken for a problem of one bundle: a
    planted ``TARGET/2026 -> elsewhere`` would otherwise carry every later extraction out of the target.
    """


class StoreConfigurationError(Exception):
    """The forwarding store refuses our credentials or configuration: every bundle would fail alike."""


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
    kept_newer: int = 0
    kept_undecided: int = 0


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
    still_rejected: list[str] = field(default_factory=list)


def _order_stamp(text: str | None) -> str:
    """A fixed-width UTC form of an ISO-8601 time that sorts as the time does ('' when unknown)."""
    if not text:
        return ""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return ""
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True, order=True)
class VersionOrder:
    """Which of two copies of one source key is newer: the S3 event time alone decides.

    Stored on every forwarded object as metadata, so that the decision survives restarts and holds
    across consumers. The bundle's creation time is recorded but never decides: a retried old version
    always lands in a later bundle, so preferring the later bundle would let it win.
    """

    event_time: str
    bundle_created_at: str

    @classmethod
    def of(cls, entry: ManifestEntry, manifest: Manifest) -> VersionOrder:
        return cls(_order_stamp(entry.event_time), _order_stamp(manifest.created_at))

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> VersionOrder | None:
        if "source-event-time" not in metadata:
            return None  # not written by a consumer: nothing to protect
        return cls(metadata["source-event-time"], metadata.get("bundle-created-at", ""))

    def newer_than(self, theirs: VersionOrder) -> bool | None:
        """True or False when the event times decide; None when they are equal or either is unknown."""
        if not self.event_time or not theirs.event_time or self.event_time == theirs.event_time:
            return None
        return self.event_time > theirs.event_time


def store_key(prefix: str, source_key: str) -> str:
    """The store key of one source key: injective, so that no two source keys share an object.

    Three disjoint forms after ``prefix``:

    * the source key itself, when it has no control character, does not start with ``%`` and fits
      the store's 1024 bytes: the usual case, ``a//b``, ``/a/b`` and ``a/b/`` included (S3-compatible
      stores take any key, so nothing is sanitized and nothing collides);
    * ``%/`` + the key with ``%`` and control characters percent-escaped, otherwise (reversible, so
      two different keys never meet; ``%/`` cannot be the start of a key forwarded as it is);
    * ``%%long/`` + the SHA-256 of the key when even that does not fit (``%%`` never starts an
      escaped key).
    """
    if (
        source_key
        and not source_key.startswith("%")
        and _CONTROL.search(source_key) is None
        and len((prefix + source_key).encode("utf-8")) <= MAX_STORE_KEY_BYTES
    ):
        return prefix + source_key
    escaped = _STORE_ESCAPE.sub(lambda match: f"%{ord(match.group()):02X}", source_key)
    key = prefix + ESCAPED_DIRECTORY + escaped
    if len(key.encode("utf-8")) <= MAX_STORE_KEY_BYTES:
        return key
    return prefix + LONG_KEY_DIRECTORY + hashlib.sha256(source_key.encode("utf-8")).hexdigest()


class BundleForwarder:
    """Uploads extracted files to an S3-compatible store (for example MinIO) before the bundle is deleted.

    One object per source key, at :func:`store_key` (the source key itself unless it starts with
    ``%``, holds control characters or is too long), never a sanitized path or the member name:
    those are not injective, and two source keys sharing one object would lose a file. The original key is also
    kept in the ``source-key`` metadata. The newest version by S3 event time wins: an older version
    never replaces a newer one (counted as ``kept_newer``); when the event times are equal or either
    is unknown the order cannot be decided and the object already in the store stays (counted as
    ``kept_undecided``). A replacement is a conditional write (``If-Match`` on the ETag that was
    checked, ``If-None-Match: *`` when there was none) so that two consumers racing cannot undo each
    other's decision. Each object carries its SHA-256 as ``ChecksumSHA256`` so that the
    receiving store checks it. The store must support conditional writes (S3 and MinIO do).
    Credential or configuration errors of the store raise :class:`StoreConfigurationError`: retrying
    them bundle after bundle cannot help.
    """

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.kept_newer = 0
        self.kept_undecided = 0

    def object_key(self, entry: ManifestEntry) -> str:
        """Where one source key's newest version lives in the store."""
        return store_key(self.prefix, entry.key)

    def forward(self, manifest: Manifest, directory: Path) -> int:
        """Upload every file of one extracted bundle unless a newer version is there; raises on failure."""
        uploaded = 0
        for entry in manifest.files:
            try:
                outcome = self._forward_one(manifest, entry, directory / entry.member)
            except (ClientError, BotoCoreError) as exc:
                if is_configuration_error(exc):
                    raise StoreConfigurationError(
                        f"the forwarding store s3://{self.bucket} refused the request: {exc}"
                    ) from exc
                raise
            if outcome == "uploaded":
                uploaded += 1
            elif outcome == "kept_newer":
                self.kept_newer += 1
            else:
                self.kept_undecided += 1
        return uploaded

    def _forward_one(self, manifest: Manifest, entry: ManifestEntry, path: Path) -> str:
        key = self.object_key(entry)
        ours = VersionOrder.of(entry, manifest)
        metadata = {
            "bundle-id": manifest.bundle_id,
            "content-sha256": entry.sha256,
            "source-bucket": entry.bucket,
            "source-event-time": ours.event_time,
            "bundle-created-at": ours.bundle_created_at,
        }
        source_key = quote(entry.key, safe="/")
        if len(source_key) <= MAX_METADATA_VALUE:
            metadata["source-key"] = source_key
        for _ in range(FORWARD_ATTEMPTS):
            current = self._current(key)
            condition: dict[str, str] = {"IfNoneMatch": "*"}
            if current is not None:
                etag, theirs = current
                if theirs is not None:
                    newer = ours.newer_than(theirs)
                    if newer is None:
                        log.warning(
                            "kept the copy of %s already in the store: event times %r and %r do not tell "
                            "which is newer",
                            key,
                            theirs.event_time,
                            ours.event_time,
                        )
                        return "kept_undecided"
                    if not newer:
                        log.info("kept the newer copy of %s in the store", key)
                        return "kept_newer"
                condition = {"IfMatch": etag}
            try:
                with path.open("rb") as body:
                    self._s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ChecksumSHA256=hex_to_b64(entry.sha256),
                        Metadata=metadata,
                        **condition,  # type: ignore[arg-type]
                    )
            except ClientError as exc:
                if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                    continue  # someone wrote the key since we looked: decide again
                raise
            return "uploaded"
        raise ClientError(
            {"Error": {"Code": "ConditionalRequestConflict", "Message": f"{key} kept changing while forwarded"}},
            "PutObject",
        )

    def _current(self, key: str) -> tuple[str, VersionOrder | None] | None:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head["ETag"], VersionOrder.from_metadata(dict(head.get("Metadata", {})))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _token(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _require_real_directory(path: Path, what: str) -> bool:
    """True when ``path`` is a real directory, False when absent; raises when it is anything else.

    ``lstat``, not ``stat``: a symlink is refused even when it points at a directory, because writing
    through it would put the files outside the target.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        return True
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
    raise TargetMisconfiguredError(f"{what} {path} is {kind}; the target directory is misconfigured")


class Consumer:
    """Polls one Distribution bucket (under a prefix) and consumes its bundles into ``target``.

    Construction takes the target's lock (raising :class:`ConsumerBusyError` when another consumer
    holds it); :meth:`close`, the end of a ``with`` block or the object's collection releases it.
    """

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
        limits: ExpansionLimits = DEFAULT_LIMITS,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.target = target
        self.forwarder = forwarder
        self.durable = durable
        self.on_consumed = on_consumed
        self.limits = limits
        self._clock = clock
        self._state = target / STATE_DIR
        self._first_seen: dict[str, float] = {}
        if not _require_real_directory(self._state, "the state directory"):
            missing = [path for path in (self._state, *self._state.parents) if not os.path.lexists(path)]
            self._state.mkdir(parents=True, exist_ok=True)
            _require_real_directory(self._state, "the state directory")
            if durable:  # a target created here must survive a power cut with the bundles under it
                for made in missing:
                    _fsync_dir(made.parent)
        self._lock_fd = self._take_lock()
        self._release = weakref.finalize(self, os.close, self._lock_fd)
        self._rejected: dict[str, dict[str, object]] = self._load_json(REJECTED_FILE)
        self._attempts: dict[str, dict[str, object]] = self._load_json(ATTEMPTS_FILE)
        self.recover()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the target's lock; the consumer must not be used afterwards."""
        self._release()

    def _take_lock(self) -> int:
        """An exclusive, non-blocking flock on the target; the file names the holder for the error message.

        ``O_NOFOLLOW``: the file is truncated, so a planted symlink must not redirect that elsewhere.
        """
        fd = os.open(self._state / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConsumerBusyError(
                f"another consumer (pid {holder}) is using {self.target}; one consumer per target directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return fd

    def _load_json(self, name: str) -> dict[str, dict[str, object]]:
        path = self._state / name
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return {}
        return {str(k): v for k, v in loaded.items() if isinstance(v, dict)} if isinstance(loaded, dict) else {}

    def _save_rejected(self) -> None:
        self._save_json(REJECTED_FILE, self._rejected)

    def _save_json(self, name: str, content: dict[str, dict[str, object]]) -> None:
        """Replace one state file atomically (and durably when ``durable``); an empty one is removed."""
        path = self._state / name
        if not content:
            path.unlink(missing_ok=True)
        else:
            partial = path.with_name(path.name + ".part")
            with partial.open("w", encoding="utf-8") as sink:
                sink.write(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
                if self.durable:
                    sink.flush()
                    os.fsync(sink.fileno())
            partial.replace(path)
        if self.durable:
            _fsync_dir(self._state)

    def _record_attempt(self, key: str, etag: str) -> int:
        """Durably count one more start on this object before touching it; returns the earlier starts.

        A bundle that kills the process (out of memory, an OOM kill) never reaches the rejection
        bookkeeping, and the next run would pick the same key first forever. This record survives the
        death; it is cleared whenever the attempt ends in any way the process lives through.
        """
        entry = self._attempts.get(key, {})
        earlier = entry.get("count", 0) if entry.get("etag") == etag else 0
        earlier = earlier if isinstance(earlier, int) else 0
        self._attempts[key] = {"etag": etag, "count": earlier + 1, "started_at": self._clock()}
        self._save_json(ATTEMPTS_FILE, self._attempts)
        return earlier

    def _clear_attempt(self, key: str) -> None:
        if self._attempts.pop(key, None) is not None:
            try:
                self._save_json(ATTEMPTS_FILE, self._attempts)
            except OSError as exc:  # at worst the bundle is counted once too often
                log.warning("could not update %s: %s", ATTEMPTS_FILE, exc)

    @property
    def rejected(self) -> dict[str, dict[str, object]]:
        """Bundles left in Distribution because they failed: key -> ETag, reasons and time."""
        return dict(self._rejected)

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
            if is_configuration_error(exc):
                raise  # retrying cannot fix credentials: the command line reports it (exit 2)
            result.errors.append(f"listing s3://{self.bucket}/{self.prefix} failed: {exc}")
            log.warning("listing failed: %s", exc)
            return result
        self._forget_gone({key for key, _ in pending})
        for key, etag in pending:
            if max_bundles is not None and len(result.consumed) >= max_bundles:
                break
            if self._rejected.get(key, {}).get("etag") == etag:
                result.skipped += 1
                result.still_rejected.append(key)
                continue
            try:
                consumed = self._attempt(key, etag)
            except BundleRejectedError as exc:
                self._reject(key, etag, exc.problems, result)
                continue
            except LocalStorageError as exc:
                result.errors.append(f"{key}: {exc}")
                log.warning("local storage failed, ending this pass: %s", str(exc))
                break
            except (ClientError, BotoCoreError, OSError) as exc:
                if is_configuration_error(exc):
                    raise  # retrying cannot fix credentials: the command line reports it (exit 2)
                result.errors.append(f"{key}: {exc}")
                log.warning("bundle %s not consumed this time: %s", key, str(exc))
                continue
            if consumed is None:
                continue
            result.consumed.append(consumed)
            if self.on_consumed is not None:
                self.on_consumed(consumed)
        return result

    def _attempt(self, key: str, etag: str) -> ConsumedBundle | None:
        """:meth:`consume` behind a durable attempt count, so that a bundle that kills us cannot block.

        The count is cleared whenever the process lives through the attempt (success, an error, a
        rejection, Ctrl-C); only a death leaves it. A bundle already started :data:`MAX_ATTEMPTS`
        times is rejected instead of tried again.
        """
        try:
            earlier = self._record_attempt(key, etag)
        except OSError as exc:
            raise LocalStorageError(f"cannot record the attempt in {self._state}: {exc}") from exc
        if earlier >= MAX_ATTEMPTS:
            self._clear_attempt(key)
            raise BundleRejectedError(
                key,
                [
                    f"the consumer stopped {earlier} times while processing this bundle (killed, out of "
                    "memory?); not tried again until the object changes"
                ],
            )
        try:
            consumed = self.consume(key, etag)
        except (Exception, KeyboardInterrupt):
            self._clear_attempt(key)
            raise
        self._clear_attempt(key)
        return consumed

    def _reject(self, key: str, etag: str, problems: list[str], result: PollResult) -> None:
        """Remember (on disk) and report a rejection once; its object is not read again until it changes."""
        self._rejected[key] = {"etag": etag, "problems": problems, "rejected_at": self._clock()}
        try:
            self._save_rejected()
        except OSError as exc:  # the memory in this process still holds it
            log.warning("could not record the rejection of %s: %s", key, exc)
        result.rejected.append(RejectedBundle(key, etag, tuple(problems)))
        log.info("bundle %s rejected, left in Distribution: %s", key, "; ".join(problems))

    def _forget_gone(self, listed: set[str]) -> None:
        stale = [key for key in self._attempts if key not in listed and key.startswith(self.prefix)]
        if stale:
            for key in stale:
                del self._attempts[key]
            try:
                self._save_json(ATTEMPTS_FILE, self._attempts)
            except OSError as exc:
                log.warning("could not update %s: %s", ATTEMPTS_FILE, exc)
        gone = [key for key in self._rejected if key not in listed and key.startswith(self.prefix)]
        if gone:
            for key in gone:
                del self._rejected[key]
            try:
                self._save_rejected()
            except OSError as exc:
                log.warning("could not update %s: %s", REJECTED_FILE, exc)

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
            totals.still_rejected = result.still_rejected
            if on_poll is not None:
                on_poll(result)
            if once or (remaining is not None and len(result.consumed) >= remaining):
                break
            stop.wait(interval)
        return totals

    def consume(self, key: str, etag: str) -> ConsumedBundle | None:
        """Process one bundle end to end; None when it vanished before we read it.

        Raises :class:`BundleRejectedError` for a bad bundle or one this filesystem cannot hold,
        :class:`LocalStorageError` when the filesystem itself fails, S3 errors as they come.
        """
        try:
            return self._consume(key, etag)
        except OSError as exc:
            if exc.errno in PERMANENT_ERRNOS:
                raise BundleRejectedError(key, [f"cannot be written under {self.target}: {exc}"]) from exc
            if isinstance(exc, (ClientError, BotoCoreError)):  # pragma: no cover - botocore errors are not OSError
                raise
            raise LocalStorageError(str(exc)) from exc

    def _consume(self, key: str, etag: str) -> ConsumedBundle | None:
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
                    compressed_size=reader.bytes_read,
                    limits=self.limits,
                )
            if not report.ok or report.manifest is None:
                raise BundleRejectedError(key, report.problems or ["no manifest"])
            manifest = report.manifest
            with (staging / MANIFEST_MEMBER).open("wb") as sink:
                sink.write(manifest.to_bytes())
                if self.durable:
                    sink.flush()
                    os.fsync(sink.fileno())
            if self.durable:
                extractor.sync_directories()

            forwarded, kept_newer, kept_undecided = 0, 0, 0
            if self.forwarder is not None:
                before = (self.forwarder.kept_newer, self.forwarder.kept_undecided)
                forwarded = self.forwarder.forward(manifest, staging)
                kept_newer = self.forwarder.kept_newer - before[0]
                kept_undecided = self.forwarder.kept_undecided - before[1]
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
                kept_newer=kept_newer,
                kept_undecided=kept_undecided,
            )
        finally:
            part.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)

    def _publish(self, staging: Path, directory: Path) -> None:
        """Move a complete extraction into place, replacing any copy left by an earlier attempt.

        Every directory between the target and the bundle's is created one by one and must be a real
        directory (never a symlink that would carry the files elsewhere). When ``durable``, the new
        entries are fsynced up to the first directory that already existed, so that the bundle, once
        deleted from Distribution, cannot vanish from disk with a power cut.
        """
        created: list[Path] = []
        current = self.target
        for part in directory.relative_to(self.target).parts[:-1]:
            current = current / part
            if not _require_real_directory(current, "the directory"):
                current.mkdir()
                created.append(current)
        if os.path.lexists(directory):
            _require_real_directory(directory, "the bundle directory")
            trash = self._state / "trash" / f"{_token(str(directory))}-{time.monotonic_ns()}"
            directory.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        staging.rename(directory)
        if self.durable:
            _fsync_dir(directory.parent)
            for made in reversed(created):
                _fsync_dir(made.parent)
