"""A deterministic reference corpus: the same bytes on every machine and every run.

Figures are only comparable between runs, branches and machines when the input is identical, so the
corpus is derived from a fixed seed and never read from disk. It mixes the two kinds of payload the
pipeline sees in practice: JSON-lines telemetry (compressible, about 5-7x with deflate) and opaque
binary bytes (already compressed or encrypted, incompressible). Sizes follow a skewed distribution
around ~100 KB, the average of SPEC N2, so per-member framing costs count as they do in production.

Each file is generated from its own sub-seed, so any file can be produced on its own, lazily and
in any order (the memory benchmark streams 1 GB without ever holding it).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

SEED = 20261122
MB = 1_000_000
DEFAULT_FILES = 2_000
DEFAULT_TOTAL_BYTES = 200 * MB
# One file in four is opaque binary; by bytes that is about a quarter of the corpus.
BINARY_EVERY = 4

_EVENT_TYPES = ("reading", "heartbeat", "alarm", "calibration", "status", "fault", "config")
_UNITS = ("C", "kPa", "V", "A", "rpm", "lux", "%RH")
_SITES = tuple(f"site-{n:03d}" for n in range(60))
_FIRMWARE = ("4.2.1", "4.2.2", "4.3.0", "5.0.0-rc1", "5.0.1")


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """One file of the corpus: its key, size and kind; ``data()`` regenerates its bytes on demand."""

    index: int
    key: str
    size: int
    binary: bool
    seed: int

    def data(self) -> bytes:
        return _binary(self.seed, self.size) if self.binary else _json_lines(self.seed, self.size)


def plan(
    *,
    files: int = DEFAULT_FILES,
    total_bytes: int = DEFAULT_TOTAL_BYTES,
    seed: int = SEED,
    binary_every: int = BINARY_EVERY,
) -> list[CorpusFile]:
    """Sizes and kinds of ``files`` files adding up to exactly ``total_bytes``; every ``binary_every``-th is opaque.

    Sizes are log-normal (many small files, a long tail up to ~12x the mean), then scaled so the total
    is exact: benchmarks report MB/s against a known byte count.
    """
    if files < 1 or total_bytes < files:
        raise ValueError("need at least one file and one byte per file")
    rng = random.Random(seed)
    weights = [min(rng.lognormvariate(0.0, 0.9), 12.0) for _ in range(files)]
    scale = total_bytes / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[-1] += total_bytes - sum(sizes)
    if sizes[-1] < 1:  # pragma: no cover - only for absurdly skewed tiny plans
        raise ValueError("total_bytes too small for the number of files")
    result: list[CorpusFile] = []
    for index, size in enumerate(sizes):
        binary = index % binary_every == binary_every - 1
        suffix = "bin" if binary else "jsonl"
        key = f"incoming/{_SITES[index % len(_SITES)]}/{index // 100:04d}/file-{index:06d}.{suffix}"
        result.append(CorpusFile(index, key, size, binary, rng.getrandbits(63)))
    return result


def total_bytes(files: list[CorpusFile]) -> int:
    return sum(f.size for f in files)


def concatenated(files: list[CorpusFile]) -> bytes:
    """All file bytes back to back: the input of the raw-compressor baseline."""
    return b"".join(f.data() for f in files)


def chunks_of(data: bytes, chunk_size: int) -> Iterator[bytes]:
    """Slices shaped like S3 body reads; memoryview slicing would hide a copy the real path makes."""
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


def _binary(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _json_lines(seed: int, size: int) -> bytes:
    """Telemetry-like JSON lines: repeated field names, varied numbers and ids, truncated to ``size``."""
    rng = random.Random(seed)
    device = f"dev-{rng.getrandbits(32):08x}"
    site = rng.choice(_SITES)
    firmware = rng.choice(_FIRMWARE)
    ts = 1_790_000_000_000 + rng.randrange(10**9)
    lines: list[str] = []
    produced = 0
    while produced < size:
        ts += rng.randrange(50, 5_000)
        kind = rng.choice(_EVENT_TYPES)
        line = (
            f'{{"ts":{ts},"device":"{device}","site":"{site}","type":"{kind}",'
            f'"seq":{rng.getrandbits(20)},"value":{rng.uniform(-50, 150):.4f},"unit":"{rng.choice(_UNITS)}",'
            f'"ok":{"true" if rng.random() < 0.97 else "false"},"fw":"{firmware}",'
            f'"trace":"{rng.getrandbits(64):016x}"}}\n'
        )
        lines.append(line)
        produced += len(line)
    return "".join(lines).encode("ascii")[:size]
