"""The ordered prefetcher: order, bounded concurrency and memory, and every failure shape."""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from data_aggregator import fetch
from data_aggregator.errors import FetchError, ObjectMissingError
from data_aggregator.fetch import Failed, Missing, OrderedPrefetcher, Ready
from data_aggregator.models import SourceObject


@dataclass
class FakeStream:
    data: list[bytes]
    fail_after: int | None = None
    etag: str | None = "etag"
    version_id: str | None = None
    owner: FakeOpener | None = None
    closed: bool = False

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.data)

    def chunks(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.data):
            if self.fail_after is not None and index == self.fail_after:
                raise FetchError("stream broke for good", operation="GetObject")
            if self.owner is not None:
                self.owner.produced(1)
            yield chunk

    def close(self) -> None:
        self.closed = True
        if self.owner is not None:
            self.owner.finished()


@dataclass
class FakeOpener:
    """Serves objects by key; records concurrency and how far reading runs ahead of consumption."""

    objects: dict[str, list[bytes]]
    delays: dict[str, float] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    broken: dict[str, int] = field(default_factory=dict)
    crash: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    max_active: int = 0
    outstanding: int = 0
    max_outstanding: int = 0
    streams: list[FakeStream] = field(default_factory=list)

    def open(self, obj: SourceObject) -> FakeStream:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delays.get(obj.key, 0))
        if obj.key in self.crash:
            self.finished()
            raise RuntimeError("unexpected bug in a reader")
        if obj.key in self.missing:
            self.finished()
            raise ObjectMissingError(f"{obj.key} is gone")
        stream = FakeStream(self.objects[obj.key], fail_after=self.broken.get(obj.key), owner=self)
        self.streams.append(stream)
        return stream

    def produced(self, n: int) -> None:
        with self.lock:
            self.outstanding += n
            self.max_outstanding = max(self.max_outstanding, self.outstanding)

    def consumed(self, n: int) -> None:
        with self.lock:
            self.outstanding -= n

    def finished(self) -> None:
        with self.lock:
            self.active -= 1


def objs(keys: list[str]) -> list[SourceObject]:
    return [SourceObject("land", k) for k in keys]


def drain(opener: FakeOpener, outcome: Ready) -> bytes:
    out = bytearray()
    for chunk in outcome.chunks:
        opener.consumed(1)
        out += chunk
    return bytes(out)


def test_outcomes_arrive_in_input_order_despite_random_latency() -> None:
    keys = [f"k{i}" for i in range(60)]
    rng = random.Random(7)
    opener = FakeOpener(objects={k: [k.encode()] * 3 for k in keys}, delays={k: rng.uniform(0, 0.01) for k in keys})
    prefetcher = OrderedPrefetcher(opener, concurrency=8, prefetch_chunks=2, max_object_bytes=10**9)
    with prefetcher.stream(objs(keys)) as outcomes:
        seen = []
        for outcome in outcomes:
            assert isinstance(outcome, Ready)
            assert drain(opener, outcome) == outcome.obj.key.encode() * 3
            seen.append(outcome.obj.key)
    assert seen == keys
    assert 1 < opener.max_active <= 8


def test_memory_is_bounded_by_back_pressure_for_large_objects() -> None:
    keys = [f"big{i}" for i in range(6)]
    opener = FakeOpener(objects={k: [b"x" * 1024] * 200 for k in keys})
    concurrency, prefetch = 3, 4
    prefetcher = OrderedPrefetcher(opener, concurrency=concurrency, prefetch_chunks=prefetch, max_object_bytes=10**9)
    with prefetcher.stream(objs(keys)) as outcomes:
        for outcome in outcomes:
            assert isinstance(outcome, Ready)
            time.sleep(0.01)  # a slow writer: readers must wait, not buffer everything
            assert len(drain(opener, outcome)) == 200 * 1024
    # Each in-flight object holds at most its queue (prefetch + header) plus the chunk in hand.
    assert opener.max_outstanding <= concurrency * (prefetch + 2)


def test_per_object_state_is_released_as_the_writer_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle of thousands of files must not keep a queue and a future per file until it ends."""
    alive: weakref.WeakSet[object] = weakref.WeakSet()
    original = fetch._Slot.__init__

    def tracking(self: fetch._Slot, obj: SourceObject, capacity: int) -> None:
        original(self, obj, capacity)
        alive.add(self)

    monkeypatch.setattr(fetch._Slot, "__init__", tracking)
    keys = [f"k{i}" for i in range(300)]
    opener = FakeOpener(objects={k: [b"x"] for k in keys})
    concurrency = 4
    prefetcher = OrderedPrefetcher(opener, concurrency=concurrency, prefetch_chunks=1, max_object_bytes=10**9)
    most = seen = 0
    with prefetcher.stream(objs(keys)) as outcomes:
        for outcome in outcomes:
            assert isinstance(outcome, Ready)
            drain(opener, outcome)
            seen += 1
            most = max(most, len(alive))
    assert seen == len(keys)
    assert most <= 2 * concurrency + 1


def test_missing_and_failed_objects_do_not_stop_the_others() -> None:
    opener = FakeOpener(objects={"a": [b"1"], "c": [b"3"]}, missing={"b"}, crash={"d"})
    prefetcher = OrderedPrefetcher(opener, concurrency=2, prefetch_chunks=1, max_object_bytes=10**9)
    with prefetcher.stream(objs(["a", "b", "c", "d"])) as outcomes:
        results = []
        for outcome in outcomes:
            if isinstance(outcome, Ready):
                drain(opener, outcome)
            results.append(outcome)
    assert isinstance(results[0], Ready)
    assert isinstance(results[1], Missing)
    assert "b is gone" in results[1].reason
    assert isinstance(results[2], Ready)
    assert isinstance(results[3], Failed)
    assert isinstance(results[3].error, FetchError)
    assert "unexpected bug" in str(results[3].error)


def test_object_over_the_limit_fails_at_open() -> None:
    opener = FakeOpener(objects={"big": [b"x" * 100], "ok": [b"y"]})
    prefetcher = OrderedPrefetcher(opener, concurrency=2, prefetch_chunks=1, max_object_bytes=50)
    with prefetcher.stream(objs(["big", "ok"])) as outcomes:
        first, second = list(outcomes)[:2]
    assert isinstance(first, Failed)
    assert "above MAX_OBJECT_BYTES=50" in str(first.error)
    assert first.error.retryable is False
    assert isinstance(second, Ready)


def test_a_stream_that_breaks_midway_raises_from_its_chunks() -> None:
    opener = FakeOpener(objects={"a": [b"1", b"2", b"3"]}, broken={"a": 2})
    prefetcher = OrderedPrefetcher(opener, concurrency=1, prefetch_chunks=1, max_object_bytes=10**9)
    with prefetcher.stream(objs(["a"])) as outcomes:
        (outcome,) = list(outcomes)
        assert isinstance(outcome, Ready)
        with pytest.raises(FetchError, match="broke for good"):
            drain(opener, outcome)


def test_leaving_early_cancels_and_joins_the_readers() -> None:
    keys = [f"k{i}" for i in range(20)]
    opener = FakeOpener(objects={k: [b"z" * 10] * 100 for k in keys})
    prefetcher = OrderedPrefetcher(opener, concurrency=4, prefetch_chunks=1, max_object_bytes=10**9)
    before = threading.active_count()
    with prefetcher.stream(objs(keys)) as outcomes:
        first = next(outcomes)
        assert isinstance(first, Ready)
        next(first.chunks)  # take one chunk and walk away, as an abandoned bundle does
    assert threading.active_count() == before
    assert all(stream.closed for stream in opener.streams)
    assert len(opener.streams) <= 4 + 1  # nothing beyond the look-ahead window was even opened


def test_empty_input() -> None:
    prefetcher = OrderedPrefetcher(FakeOpener(objects={}), concurrency=2, prefetch_chunks=1, max_object_bytes=1)
    with prefetcher.stream([]) as outcomes:
        assert list(outcomes) == []
