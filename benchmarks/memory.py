"""2. Memory: peak RSS while bundling 1 GB of input stays under 200 MB.

Each variant runs in a fresh child interpreter that imports the Lambda handler module first (so the
floor includes boto3, Powertools and pydantic, as a real Lambda process does), then streams its input
through the production prefetcher and writer and reads the finished bundle back as an upload would.
The child reports its own ``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` of a child would start
from the parent's peak and mean nothing (PITFALLS, "Measuring").

The input is generated from the corpus seed into a scratch file first (by the parent), and the child
reads each object from it chunk by chunk with ``pread``, as a GET body arrives: the child never holds
the gigabyte, nor a generator's temporaries, so whatever its peak shows is the pipeline's own footprint.

Baselines in the same run: the interpreter's floor, and the same pipeline with a spool that never
spills (what the bundle would cost if it were kept in memory).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.common import MB, MIB, Result, Scale, Table, Target, default_settings

LIMIT_BYTES = 200 * MB
# The fetch settings before they were tuned with this benchmark (docs/performance.md).
FORMER_DEFAULTS = {"FETCH_CONCURRENCY": 16, "FETCH_CHUNK_BYTES": MIB, "FETCH_PREFETCH_CHUNKS": 4}
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Variant:
    label: str
    kind: str  # "mix": the reference corpus shape; "large": opaque objects of one size
    overrides: dict[str, int]
    counts_for_target: bool = True


def variants(scale: Scale) -> list[Variant]:
    """The shipped defaults on both input shapes, plus the alternatives the defaults were chosen over."""
    never_spill = 4 * scale.memory_input_bytes
    large = f"{scale.memory_large_object_bytes // MIB} MiB objects"
    return [
        Variant("reference mix, defaults", "mix", {}),
        Variant("reference mix, spool never spills (baseline)", "mix", {"SPOOL_MEMORY_BYTES": never_spill}, False),
        Variant(f"{large}, defaults", "large", {}),
        Variant(f"{large}, FETCH_CONCURRENCY=16", "large", {"FETCH_CONCURRENCY": 16}),
        Variant(f"{large}, former defaults (baseline)", "large", FORMER_DEFAULTS, False),
    ]


def run(scale: Scale) -> Result:
    result = Result(name="memory", title="2. Memory", scale=scale.name)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        _run(scale, result, Path(scratch))
    return result


def _run(scale: Scale, result: Result, scratch: Path) -> None:
    chosen = variants(scale) if scale.sweep else variants(scale)[:1]
    inputs = {kind: prepare(kind, scale, scratch) for kind in sorted({v.kind for v in chosen})}
    floor = child({"kind": "floor"})
    rows: list[tuple[str | int | float, ...]] = [
        ("interpreter + handler imports (floor)", 0.0, floor["peak_bytes"] / MB, 0.0, 0.0, False, 0.0)
    ]
    worst = 0
    for variant in chosen:
        report = child({"kind": variant.kind, "index": str(inputs[variant.kind]), "overrides": variant.overrides})
        if variant.counts_for_target:
            worst = max(worst, report["peak_bytes"])
        rows.append(
            (
                variant.label,
                report["input_bytes"] / MB,
                report["peak_bytes"] / MB,
                (report["peak_bytes"] - report["floor_bytes"]) / MB,
                report["bundle_bytes"] / MB,
                report["spilled"],
                report["seconds"],
            )
        )
        result.figures[f"peak_mb[{variant.label}]"] = report["peak_bytes"] / MB
    settings = default_settings()
    result.tables.append(
        Table(
            title=f"Peak RSS (VmHWM) of a fresh process bundling {scale.memory_input_bytes / MB:,.0f} MB",
            headers=("variant", "input MB", "peak RSS MB", "above floor MB", "bundle MB", "spilled", "seconds"),
            rows=tuple(rows),
            notes=(
                "one bundle per run (above MAX_BUNDLE_INPUT_BYTES on purpose: the worst case for the spool), "
                "fed by the production prefetcher reading a scratch file chunk by chunk, then read back in "
                "8 MiB pieces as an upload does",
                f"defaults: SPOOL_MEMORY_BYTES={settings.spool_memory_bytes}, "
                f"FETCH_CONCURRENCY={settings.fetch_concurrency}, FETCH_CHUNK_BYTES={settings.fetch_chunk_bytes}, "
                f"FETCH_PREFETCH_CHUNKS={settings.fetch_prefetch_chunks}, "
                f"COMPRESSION_THREADS={settings.compression_threads}",
                "buffered source bytes are bounded by FETCH_CONCURRENCY x (FETCH_PREFETCH_CHUNKS + 1) x "
                "FETCH_CHUNK_BYTES, reached only when every object in flight is that large",
            ),
        )
    )
    result.figures["worst_peak_mb"] = worst / MB
    result.targets.append(
        Target(
            f"peak RSS under {LIMIT_BYTES / MB:.0f} MB while bundling {scale.memory_input_bytes / MB:,.0f} MB",
            worst < LIMIT_BYTES,
            f"worst {worst / MB:.0f} MB over the variants that use the shipped spool",
        )
    )


def prepare(kind: str, scale: Scale, scratch: Path) -> Path:
    """Write the input of ``kind`` to a scratch file; returns the path of its JSON index."""
    total = scale.memory_input_bytes
    if kind == "large":
        size = scale.memory_large_object_bytes
        files = [
            corpus.CorpusFile(i, f"large/object-{i:05d}.bin", size, True, corpus.SEED + i)
            for i in range(max(1, total // size))
        ]
    else:
        files = corpus.plan(files=max(1, total // 100_000), total_bytes=total)
    data_path = scratch / f"{kind}.bin"
    entries: list[dict[str, Any]] = []
    offset = 0
    with data_path.open("wb") as out:
        for file in files:
            if file.binary and file.size > 4 * MIB:  # large opaque objects: generate piecewise
                rng = random.Random(file.seed)
                for start in range(0, file.size, 4 * MIB):
                    out.write(rng.randbytes(min(4 * MIB, file.size - start)))
            else:
                out.write(file.data())
            entries.append({"key": file.key, "offset": offset, "size": file.size, "etag": f"{file.seed:016x}"})
            offset += file.size
    index_path = scratch / f"{kind}.json"
    index_path.write_text(json.dumps({"data": str(data_path), "objects": entries}))
    return index_path


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one variant in a fresh interpreter and return its JSON report."""
    completed = subprocess.run(  # noqa: S603 - our own module, our own interpreter
        [sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory child failed ({completed.returncode}): {completed.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


# ---------------------------------------------------------------------------------------- the child


def vm_hwm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


class FileSlice:
    """An open object read from the scratch file in chunks, the way a GET body is read."""

    def __init__(self, fd: int, offset: int, size: int, chunk: int, etag: str) -> None:
        self._fd = fd
        self._offset = offset
        self._chunk = chunk
        self.size = size
        self.etag: str | None = etag
        self.version_id: str | None = None

    def chunks(self) -> Iterator[bytes]:
        done = 0
        while done < self.size:
            piece = os.pread(self._fd, min(self._chunk, self.size - done), self._offset + done)
            if not piece:
                raise OSError("scratch file ended early")
            done += len(piece)
            yield piece

    def close(self) -> None:
        """The file descriptor is shared by all objects."""


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    import data_aggregator.app  # noqa: F401 - the floor of a real Lambda process includes the handler's imports
    from benchmarks.pipeline import prefetch_into_bundle
    from data_aggregator.models import SourceObject

    floor = vm_hwm_bytes()
    if spec["kind"] == "floor":
        return {"peak_bytes": floor, "floor_bytes": floor}
    settings = default_settings(**spec["overrides"])
    index = json.loads(Path(spec["index"]).read_text())
    entries = {e["key"]: e for e in index["objects"]}
    objects = [SourceObject(bucket="landing", key=e["key"], etag=e["etag"], size=e["size"]) for e in index["objects"]]
    fd = os.open(index["data"], os.O_RDONLY)

    class Opener:
        def open(self, obj: SourceObject) -> FileSlice:
            entry = entries[obj.key]
            return FileSlice(fd, entry["offset"], entry["size"], settings.fetch_chunk_bytes, entry["etag"])

    started = time.perf_counter()
    bundle = prefetch_into_bundle(Opener(), objects, settings)
    os.close(fd)
    spilled = bool(getattr(bundle.body, "_rolled", False))
    digest = hashlib.sha256()
    while piece := bundle.body.read(8 * MIB):  # what the upload does with the spool
        digest.update(piece)
    if digest.hexdigest() != bundle.sha256_hex:
        raise RuntimeError("bundle read back does not match its hash")
    bundle.close()
    return {
        "peak_bytes": vm_hwm_bytes(),
        "floor_bytes": floor,
        "input_bytes": bundle.input_bytes,
        "bundle_bytes": bundle.size,
        "spilled": spilled,
        "seconds": time.perf_counter() - started,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="memory benchmark child (run by benchmarks.memory)")
    parser.add_argument("--child", required=True, help="JSON spec of the variant")
    print(json.dumps(child_main(json.loads(parser.parse_args().child))))
