"""1. Bundling throughput: our writer against a naive tarfile and against the bare compressor.

Three references run on the same corpus in the same process, so machine speed cancels out:

* naive: ``tarfile.open(mode="w:gz")`` at the stdlib's default level 9, the first thing anyone
  writes, and the floor we must beat by 5x;
* stdlib level 6: zlib's default trade-off, the yardstick for the compression ratio (ours must be
  within 15% of it);
* raw ISA-L over the concatenated corpus: no tar, no hashing, no Python per file, the ceiling our
  writer can approach (target 60% of it). It is measured both in one call and streamed in 1 MiB
  pieces, and the faster of the two is the ceiling.

Our writer does strictly more than any of them (a SHA-256 per file and one over the bundle, PAX
headers, the manifest, the spool), which is what the production path pays.
"""

from __future__ import annotations

import functools
import io
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

from isal import igzip, isal_zlib

from benchmarks import corpus
from benchmarks.common import GB, MB, Result, Sample, Scale, Table, Target, default_settings, measure_interleaved
from benchmarks.pipeline import MemoryOpener, bundle_size, new_writer
from data_aggregator.config import Settings
from data_aggregator.core import THREADED_BLOCK_BYTES
from data_aggregator.models import SourceObject

EVENT_TIME = "2026-11-22T21:00:00.000Z"


@dataclass(frozen=True, slots=True)
class Loaded:
    """The corpus in memory, so the benchmark measures bundling and not generation."""

    files: list[corpus.CorpusFile]
    objects: list[SourceObject]
    data: list[bytes]
    total: int


def load(scale: Scale) -> Loaded:
    files = corpus.plan(files=scale.corpus_files, total_bytes=scale.corpus_bytes)
    data = [f.data() for f in files]
    objects = [
        SourceObject(bucket="landing", key=f.key, etag=f"{f.seed:016x}", size=f.size, event_time=EVENT_TIME)
        for f in files
    ]
    return Loaded(files, objects, data, sum(len(d) for d in data))


OURS = "ours"
PIPELINE = "pipeline"
NAIVE = "naive"
LEVEL6 = "level6"
RAW_ONE_CALL = "raw-one-call"
RAW_STREAMED = "raw-streamed"


def run(scale: Scale) -> Result:
    result = Result(name="throughput", title="1. Bundling throughput", scale=scale.name)
    loaded = load(scale)
    settings = default_settings()
    level = settings.compression_level
    repeats = scale.repeats
    joined = corpus.concatenated(loaded.files)
    labels = {
        OURS: f"data-aggregator BundleWriter (defaults: ISA-L level {level}, "
        f"{settings.compression_threads} compression thread(s))",
        PIPELINE: f"data-aggregator prefetcher + BundleWriter (fetch concurrency {settings.fetch_concurrency}, "
        "no latency)",
        NAIVE: "naive tarfile w:gz (stdlib default level 9)",
        LEVEL6: "tarfile w:gz, stdlib level 6 (ratio yardstick)",
        RAW_ONE_CALL: f"raw ISA-L level {level}, one call over the concatenated bytes",
        RAW_STREAMED: f"raw ISA-L level {level}, streamed in 1 MiB pieces over the concatenated bytes",
    }
    runs: dict[str, Callable[[], int]] = {
        OURS: functools.partial(bundle_writer, loaded, settings),
        PIPELINE: functools.partial(prefetched, loaded, settings),
        NAIVE: functools.partial(naive_tarfile, loaded, 9),
        LEVEL6: functools.partial(naive_tarfile, loaded, 6),
        RAW_ONE_CALL: functools.partial(raw_isal, joined, level),
        RAW_STREAMED: functools.partial(raw_isal_streamed, joined, level),
    }
    measured = measure_interleaved(runs, repeats, warm_up=frozenset({OURS, PIPELINE, RAW_ONE_CALL, RAW_STREAMED}))
    del runs, joined
    ours, ours_size = measured[OURS]
    naive = measured[NAIVE][0]
    level6_size = measured[LEVEL6][1]
    ceiling = min(measured[RAW_ONE_CALL][0].wall, measured[RAW_STREAMED][0].wall)

    table_rows: list[tuple[str | int | float, ...]] = []
    for key, (sample, size) in measured.items():
        table_rows.append(
            (
                labels[key],
                loaded.total / sample.wall / MB,
                sample.cpu / loaded.total * GB,
                loaded.total / size,
                naive.wall / sample.wall,
                ceiling / sample.wall * 100,
                sample.spread,
            )
        )
    result.tables.append(
        Table(
            title=f"Throughput on the reference corpus ({len(loaded.files):,} files, {loaded.total / MB:,.0f} MB)",
            headers=("variant", "MB/s", "CPU s/GB", "ratio", "x naive", "% of raw ISA-L", "wall s (min-max)"),
            rows=tuple(table_rows),
            notes=(
                f"median of {repeats} run(s), variants taking turns, fast ones after an untimed warm-up run; MB/s "
                "is input bytes per wall second; CPU s/GB is process CPU time (all threads) per GB of input; "
                "ratio is input bytes / output bytes",
                "the corpus is ~75% JSON-lines and ~25% incompressible bytes by size, generated from a fixed seed",
                "naive and raw rows hash nothing; ours computes a SHA-256 per file and over the whole bundle",
            ),
        )
    )
    if scale.sweep:
        result.tables.append(sweep(loaded, repeats))
        result.tables.append(block_sweep(loaded, settings, repeats))

    ratio, level6_ratio = loaded.total / ours_size, loaded.total / level6_size
    ours_mb_s, naive_mb_s, raw_mb_s = (loaded.total / s / MB for s in (ours.wall, naive.wall, ceiling))
    result.figures.update(
        ours_mb_s=ours_mb_s,
        ours_cpu_s_per_gb=ours.cpu / loaded.total * GB,
        naive_mb_s=naive_mb_s,
        raw_mb_s=raw_mb_s,
        ours_ratio=ratio,
        level6_ratio=level6_ratio,
    )
    result.targets += [
        Target(
            "at least 5x the naive tarfile baseline",
            naive.wall / ours.wall >= 5,
            f"{naive.wall / ours.wall:.1f}x ({ours_mb_s:.0f} vs {naive_mb_s:.0f} MB/s)",
        ),
        Target(
            "at least 60% of the raw ISA-L limit",
            ceiling / ours.wall >= 0.6,
            f"{ceiling / ours.wall * 100:.0f}% ({ours_mb_s:.0f} of {raw_mb_s:.0f} MB/s)",
        ),
        Target(
            "compression ratio within 15% of stdlib level 6",
            ratio >= 0.85 * level6_ratio,
            f"{ratio:.3f} vs {level6_ratio:.3f} ({(ratio / level6_ratio - 1) * 100:+.1f}%)",
        ),
    ]
    return result


def sweep(loaded: Loaded, repeats: int) -> Table:
    """The tuning grid behind COMPRESSION_LEVEL and COMPRESSION_THREADS."""
    runs: dict[str, Callable[[], int]] = {}
    for level in range(4):
        for threads in (0, 1, 2):
            settings = default_settings(COMPRESSION_LEVEL=level, COMPRESSION_THREADS=threads)
            runs[f"level {level}, {threads} thread(s)"] = functools.partial(bundle_writer, loaded, settings)
    measured = measure_interleaved(runs, repeats, warm_up=frozenset(runs))
    return _grid_table("Tuning grid: our writer by ISA-L level and compression threads", loaded, measured, repeats)


def block_sweep(loaded: Loaded, settings: Settings, repeats: int) -> Table:
    """The tuning grid behind THREADED_BLOCK_BYTES (only matters with compression threads)."""
    runs: dict[str, Callable[[], int]] = {
        f"{block // 1024} KiB blocks{' (default)' if block == THREADED_BLOCK_BYTES else ''}": functools.partial(
            bundle_writer, loaded, settings, block
        )
        for block in (512 * 1024, 1024 * 1024, 2 * 1024 * 1024, 4 * 1024 * 1024)
    }
    measured = measure_interleaved(runs, repeats, warm_up=frozenset(runs))
    title = (
        f"Tuning grid: threaded-writer block size (ISA-L level {settings.compression_level}, "
        f"{settings.compression_threads} compression thread(s))"
    )
    return _grid_table(title, loaded, measured, repeats)


def _grid_table(title: str, loaded: Loaded, measured: dict[str, tuple[Sample, int]], repeats: int) -> Table:
    rows = tuple(
        (
            label,
            loaded.total / sample.wall / MB,
            sample.cpu / loaded.total * GB,
            loaded.total / size,
            sample.spread,
        )
        for label, (sample, size) in measured.items()
    )
    return Table(
        title=title,
        headers=("setting", "MB/s", "CPU s/GB", "ratio", "wall s (min-max)"),
        rows=rows,
        notes=(f"median of {repeats} run(s), settings taking turns, same corpus and spool settings as above",),
    )


def bundle_writer(loaded: Loaded, settings: Settings, block_bytes: int = THREADED_BLOCK_BYTES) -> int:
    """The production writer fed directly, chunks the size S3 reads return; returns bytes out."""
    chunk = settings.fetch_chunk_bytes
    with new_writer(settings, block_bytes=block_bytes) as writer:
        for obj, data in zip(loaded.objects, loaded.data, strict=True):
            writer.add(obj, member=obj.key, size=len(data), chunks=corpus.chunks_of(data, chunk))
        bundle = writer.finish()
    bundle.close()
    return bundle.size


def prefetched(loaded: Loaded, settings: Settings) -> int:
    """The service's inner loop: ordered prefetch from memory feeding the writer; returns bytes out."""
    by_key = dict(zip((o.key for o in loaded.objects), loaded.data, strict=True))
    return bundle_size(MemoryOpener(by_key, settings.fetch_chunk_bytes), loaded.objects, settings)


def naive_tarfile(loaded: Loaded, level: int) -> int:
    """What a first implementation writes: TarFile.addfile over whole in-memory files, stdlib gzip."""
    spool = cast(IO[bytes], tempfile.SpooledTemporaryFile(max_size=default_settings().spool_memory_bytes))  # noqa: SIM115
    try:
        with tarfile.open(fileobj=spool, mode="w:gz", compresslevel=level) as tar:
            for obj, data in zip(loaded.objects, loaded.data, strict=True):
                info = tarfile.TarInfo(obj.key)
                info.size = len(data)
                info.mtime = 1_795_000_000
                tar.addfile(info, io.BytesIO(data))
        return spool.tell()
    finally:
        spool.close()


def raw_isal(joined: bytes, level: int) -> int:
    return len(igzip.compress(joined, level, mtime=0))


def raw_isal_streamed(joined: bytes, level: int) -> int:
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)  # wbits 31: gzip framing and CRC
    size = 0
    view = memoryview(joined)
    for start in range(0, len(joined), 1 << 20):
        size += len(compressor.compress(view[start : start + (1 << 20)]))
    return size + len(compressor.flush())
