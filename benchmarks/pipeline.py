"""The production inner loop (ordered prefetch feeding the bundle writer) and in-memory sources for it.

Benchmarks drive exactly what ``Aggregator._bundle`` drives, minus AWS: the same prefetcher, the same
writer, the same settings, so a figure measured here is a figure of the shipped code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from benchmarks import corpus
from data_aggregator.config import Settings
from data_aggregator.core import THREADED_BLOCK_BYTES, BuiltBundle, BundleWriter
from data_aggregator.fetch import ObjectOpener, OrderedPrefetcher, Ready
from data_aggregator.models import SourceObject


def new_writer(settings: Settings, bundle_id: str = "bench", block_bytes: int = THREADED_BLOCK_BYTES) -> BundleWriter:
    return BundleWriter(
        bundle_id=bundle_id,
        created_at=datetime.now(UTC),
        compression_level=settings.compression_level,
        compression_threads=settings.compression_threads,
        compression_block_bytes=block_bytes,
        spool_memory_bytes=settings.spool_memory_bytes,
    )


def prefetch_into_bundle(opener: ObjectOpener, objects: Sequence[SourceObject], settings: Settings) -> BuiltBundle:
    """Bundle ``objects`` as the service does; the caller closes the returned bundle."""
    prefetcher = OrderedPrefetcher(
        opener,
        concurrency=settings.fetch_concurrency,
        prefetch_chunks=settings.fetch_prefetch_chunks,
        max_object_bytes=settings.max_object_bytes,
    )
    with new_writer(settings) as writer, prefetcher.stream(objects) as outcomes:
        for outcome in outcomes:
            if not isinstance(outcome, Ready):
                raise TypeError(f"benchmark sources never fail, got {outcome!r}")
            writer.add(outcome.obj, member=outcome.obj.key, size=outcome.size, chunks=outcome.chunks)
        return writer.finish()


def bundle_size(opener: ObjectOpener, objects: Sequence[SourceObject], settings: Settings) -> int:
    """Bundle and throw away; the size proves the work was done and gives the ratio."""
    bundle = prefetch_into_bundle(opener, objects, settings)
    bundle.close()
    return bundle.size


class MemoryObject:
    """An open object served from memory in S3-sized chunks."""

    def __init__(self, data: bytes, chunk: int, etag: str | None) -> None:
        self._data = data
        self._chunk = chunk
        self.size = len(data)
        self.etag = etag
        self.version_id: str | None = None

    def chunks(self) -> Iterator[bytes]:
        return corpus.chunks_of(self._data, self._chunk)

    def close(self) -> None:
        """Nothing to release."""


class MemoryOpener:
    """Opens objects from memory after a fixed time to first byte, like a GET that waits on S3.

    The wait is a sleep: like network latency it holds a fetch thread but not the CPU, which is
    exactly what bounded concurrent prefetching is meant to hide.
    """

    def __init__(self, by_key: dict[str, bytes], chunk: int, latency_seconds: float = 0.0) -> None:
        self._by_key = by_key
        self._chunk = chunk
        self._latency = latency_seconds

    def open(self, obj: SourceObject) -> MemoryObject:
        if self._latency:
            time.sleep(self._latency)
        return MemoryObject(self._by_key[obj.key], self._chunk, obj.etag)
