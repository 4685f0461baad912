"""Concurrent, ordered, bounded prefetching of source objects.

The bundle writer must consume members one after another (a tar is sequential), while S3 latency
dominates small-file throughput. So a bounded pool opens and reads the next objects ahead of the
writer, each into a small bounded queue of chunks. Memory stays bounded by
``concurrency x prefetch_chunks x chunk size`` however large the objects are: a worker reading a large
object blocks on its full queue (back-pressure) until the writer reaches it.

Tasks are submitted in order and only ``concurrency`` ahead of the writer, so the object the writer
waits for has always been started: no deadlock, no unbounded read-ahead.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import queue
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from data_aggregator.errors import AggregatorError, FetchError, ObjectMissingError, ObjectTooLargeError
from data_aggregator.models import SourceObject

_POLL_SECONDS = 0.05
# glibc's mallopt parameter for the most malloc arenas a process may create (M_ARENA_MAX).
_M_ARENA_MAX = -8
_SHARED_ARENAS = 2


class OpenedObject(Protocol):
    """An object whose GET has started; ``chunks`` yields its bytes, resuming broken streams itself."""

    @property
    def size(self) -> int: ...

    @property
    def etag(self) -> str | None: ...

    @property
    def version_id(self) -> str | None: ...

    def chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class ObjectOpener(Protocol):
    """Opens a source object, raising ``ObjectMissingError`` when it no longer exists."""

    def open(self, obj: SourceObject) -> OpenedObject: ...


@dataclass(frozen=True, slots=True)
class Ready:
    """An object ready to stream into the bundle; iterate ``chunks`` exactly once, fully."""

    obj: SourceObject
    size: int
    etag: str | None
    version_id: str | None
    chunks: Iterator[bytes]


@dataclass(frozen=True, slots=True)
class Missing:
    """Deleted (or overwritten in an unversioned bucket) before we read it: acknowledged and counted."""

    obj: SourceObject
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Could not be opened; nothing of it was written, so only its own messages fail."""

    obj: SourceObject
    error: AggregatorError


type FetchOutcome = Ready | Missing | Failed


@dataclass(frozen=True, slots=True)
class _Header:
    size: int
    etag: str | None
    version_id: str | None


class _End:
    pass


_END = _End()
type _Item = _Header | Missing | Failed | bytes | _End | AggregatorError


class _Slot:
    def __init__(self, obj: SourceObject, capacity: int) -> None:
        self.obj = obj
        self.items: queue.Queue[_Item] = queue.Queue(maxsize=capacity)
        self.future: Future[None] | None = None


class OrderedPrefetcher:
    """Yields one ``FetchOutcome`` per object, in input order, while later objects load in the background."""

    def __init__(
        self,
        opener: ObjectOpener,
        *,
        concurrency: int,
        prefetch_chunks: int,
        max_object_bytes: int,
    ) -> None:
        self._opener = opener
        self._concurrency = concurrency
        self._capacity = prefetch_chunks + 1  # room for the header too
        self._max_object_bytes = max_object_bytes

    @contextmanager
    def stream(self, objects: Sequence[SourceObject]) -> Iterator[Iterator[FetchOutcome]]:
        """Context manager around the outcome iterator; leaving it cancels and joins all workers."""
        _share_malloc_arenas()
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="fetch")
        live: dict[int, _Slot] = {}
        try:
            yield self._outcomes(objects, live, pool, cancel)
        finally:
            cancel.set()
            for slot in list(live.values()):  # unblock workers waiting on a full queue
                _drain(slot.items)
            pool.shutdown(wait=True, cancel_futures=True)

    def _outcomes(
        self,
        objects: Sequence[SourceObject],
        live: dict[int, _Slot],
        pool: ThreadPoolExecutor,
        cancel: threading.Event,
    ) -> Iterator[FetchOutcome]:
        """Slots (a queue, its locks, a future) exist only from submission until the writer has moved
        past them and their worker has returned: a bundle of thousands of files would otherwise keep
        several KiB per file alive for the whole bundle. ``live`` is shared with ``stream`` so that
        whatever is still in flight when the consumer leaves gets drained."""
        submitted = 0

        def submit_upto(limit: int) -> None:
            nonlocal submitted
            while submitted < min(limit, len(objects)):
                slot = _Slot(objects[submitted], self._capacity)
                # A copy of the caller's context carries the invocation's deadline into the worker.
                slot.future = pool.submit(contextvars.copy_context().run, self._work, slot, cancel)
                live[submitted] = slot
                submitted += 1

        for index in range(len(objects)):
            _forget_finished(live, before=index)
            submit_upto(index + self._concurrency)
            slot = live[index]
            first = _take(slot)
            if isinstance(first, _Header):
                yield Ready(slot.obj, first.size, first.etag, first.version_id, _chunks(slot))
            elif isinstance(first, Missing | Failed):
                yield first
            elif isinstance(first, AggregatorError):
                yield Failed(slot.obj, first)
            else:  # pragma: no cover - a worker always starts with a header or a verdict
                raise TypeError(f"fetch protocol error for {slot.obj.describe()}: {first!r}")

    def _work(self, slot: _Slot, cancel: threading.Event) -> None:
        obj = slot.obj
        try:
            opened = self._opener.open(obj)
        except ObjectMissingError as exc:
            _put(slot, Missing(obj, str(exc)), cancel)
            return
        except AggregatorError as exc:
            _put(slot, Failed(obj, exc), cancel)
            return
        except Exception as exc:  # any unexpected fault must reach the writer, not a log
            _put(slot, Failed(obj, _as_fetch_error(obj, exc)), cancel)
            return
        try:
            if opened.size > self._max_object_bytes:
                error = ObjectTooLargeError(
                    f"{obj.describe()} is {opened.size} bytes, above MAX_OBJECT_BYTES={self._max_object_bytes}",
                    operation="GetObject",
                    bucket=obj.bucket,
                    key=obj.key,
                )
                _put(slot, Failed(obj, error), cancel)
                return
            if not _put(slot, _Header(opened.size, opened.etag, opened.version_id), cancel):
                return
            for chunk in opened.chunks():
                if not _put(slot, chunk, cancel):
                    return
            _put(slot, _END, cancel)
        except AggregatorError as exc:
            _put(slot, exc, cancel)
        except Exception as exc:  # surfaced to the writer, which abandons the bundle
            _put(slot, _as_fetch_error(obj, exc), cancel)
        finally:
            opened.close()


@functools.cache
def _share_malloc_arenas() -> None:
    """Let the fetch threads share two malloc arenas instead of getting one each.

    glibc gives every new thread an arena of its own, up to eight per core, and an arena keeps the
    memory its freed blocks held: FETCH_CONCURRENCY threads allocating body chunks left ~10 MB more
    resident for a 400-file batch (docs/performance.md, section 7). Sharing costs no CPU here: the
    chunks are allocated while the thread holds the GIL, so the threads never contend for an arena.
    Elsewhere than glibc (or without it) nothing happens; the setting only bounds memory.
    """
    if sys.platform != "linux":
        return
    import ctypes  # noqa: PLC0415 - only here, once per process, and only on Linux

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _SHARED_ARENAS)


def _as_fetch_error(obj: SourceObject, exc: Exception) -> FetchError:
    return FetchError(
        f"reading {obj.describe()} failed: {exc}", operation="GetObject", bucket=obj.bucket, key=obj.key, cause=exc
    )


def _put(slot: _Slot, item: _Item, cancel: threading.Event) -> bool:
    """Block until there is room (back-pressure) unless the consumer went away."""
    while not cancel.is_set():
        try:
            slot.items.put(item, timeout=_POLL_SECONDS)
        except queue.Full:
            continue
        return True
    return False


def _take(slot: _Slot) -> _Item:
    """Wait for the next item; a worker that died without a word becomes a fetch error, not a hang."""
    while True:
        try:
            return slot.items.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            future = slot.future
            if future is not None and future.done() and slot.items.empty():
                cause = future.exception() if not future.cancelled() else None
                return FetchError(
                    f"reader for {slot.obj.describe()} stopped without a result",
                    operation="GetObject",
                    bucket=slot.obj.bucket,
                    key=slot.obj.key,
                    cause=cause,
                )


def _chunks(slot: _Slot) -> Iterator[bytes]:
    while True:
        item = _take(slot)
        if isinstance(item, bytes):
            yield item
        elif isinstance(item, _End):
            return
        elif isinstance(item, AggregatorError):
            raise item
        else:  # pragma: no cover - protocol guard
            raise TypeError(f"fetch protocol error for {slot.obj.describe()}: {item!r}")


def _forget_finished(live: dict[int, _Slot], *, before: int) -> None:
    """Drop the slots the consumer has left behind once their worker has returned."""
    for index in [i for i, slot in live.items() if i < before and slot.future is not None and slot.future.done()]:
        del live[index]


def _drain(items: queue.Queue[_Item]) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return
