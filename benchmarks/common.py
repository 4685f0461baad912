"""Shared plumbing: scales, timing, result tables and targets.

Every benchmark returns a ``Result``: tables for people (rendered as Markdown so they paste straight
into docs/performance.md) plus ``figures`` and ``targets`` for machines (``--json``, ``--check`` and
the smoke test). Timings are medians over repeats because the figures are taken on shared machines
where a single run can be slowed down by anything else that is running.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from data_aggregator.config import Settings

MB = 1_000_000
MIB = 1024 * 1024
GB = 1_000_000_000

type Cell = str | int | float


@dataclass(frozen=True, slots=True)
class Scale:
    """How big each benchmark runs. ``FULL`` is what the documented figures use; ``SMOKE`` only
    proves the code paths still work (tiny inputs, a second or two, figures meaningless)."""

    name: str
    repeats: int
    corpus_files: int
    corpus_bytes: int
    memory_input_bytes: int
    memory_large_object_bytes: int
    fetch_files: int
    fetch_file_bytes: int
    fetch_latency_seconds: float
    concurrencies: tuple[int, ...]
    moto_concurrencies: tuple[int, ...]
    overhead_batches: tuple[int, ...]
    floor_files: int
    floor_bytes: int
    sweep: bool


FULL = Scale(
    name="full",
    repeats=3,
    corpus_files=2_000,
    corpus_bytes=200 * MB,
    memory_input_bytes=1 * GB,
    memory_large_object_bytes=16 * MIB,
    fetch_files=1_000,
    fetch_file_bytes=10_000,
    fetch_latency_seconds=0.050,
    concurrencies=(1, 4, 8, 16, 32),
    moto_concurrencies=(8, 16, 32),
    overhead_batches=(100, 1_000),
    floor_files=400,
    floor_bytes=100 * MB,
    sweep=True,
)

SMOKE = Scale(
    name="smoke",
    repeats=1,
    corpus_files=24,
    corpus_bytes=1 * MB,
    memory_input_bytes=4 * MB,
    memory_large_object_bytes=1 * MIB,
    fetch_files=24,
    fetch_file_bytes=2_000,
    fetch_latency_seconds=0.002,
    concurrencies=(1, 4),
    moto_concurrencies=(4,),
    overhead_batches=(10,),
    floor_files=20,
    floor_bytes=1 * MB,
    sweep=False,
)


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        """A GitHub-flavoured Markdown table: readable in a terminal, pasteable into the docs."""
        cells = [[_fmt(c) for c in row] for row in self.rows]
        lines = [f"#### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in cells)
        if self.notes:
            lines.append("")
            lines.extend(f"* {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue, its verdict, and the figures behind it (so a miss explains itself)."""

    name: str
    met: bool
    detail: str


@dataclass(slots=True)
class Result:
    name: str
    title: str
    scale: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def render(self) -> str:
        parts = [f"### {self.title}  (scale: {self.scale}, {self.seconds:.1f} s)", ""]
        parts.extend(table.render() + "\n" for table in self.tables)
        for target in self.targets:
            parts.append(f"* target {'met' if target.met else 'MISSED'}: {target.name} - {target.detail}")
        return "\n".join(parts).rstrip() + "\n"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Sample:
    """Median wall and CPU seconds over the repeats, and every wall time for the spread."""

    wall: float
    cpu: float
    walls: tuple[float, ...]

    @property
    def spread(self) -> str:
        return f"{min(self.walls):.2f}-{max(self.walls):.2f}"


def measure[T](run: Callable[[], T], repeats: int) -> tuple[Sample, T]:
    """Run ``run`` ``repeats`` times; CPU time is the whole process (all threads), as Lambda bills it."""
    walls: list[float] = []
    cpus: list[float] = []
    values: list[T] = []
    for _ in range(max(1, repeats)):
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        values.append(run())
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return Sample(statistics.median(walls), statistics.median(cpus), tuple(walls)), values[-1]


def measure_interleaved[T](
    runs: dict[str, Callable[[], T]], repeats: int, *, warm_up: frozenset[str] = frozenset()
) -> dict[str, tuple[Sample, T]]:
    """Like ``measure`` for several variants, taking turns: round 1 runs each once, then round 2...

    On a shared machine the background load drifts; running variant A three times and then variant B
    three times would hand one of them the quiet minute. Taking turns spreads the drift over all of
    them. Variants in ``warm_up`` first run once untimed (first-touch page faults, lazy imports, the
    allocator growing its arenas), which would otherwise land on whichever variant happens to go first.
    """
    for name, run in runs.items():
        if name in warm_up:
            run()
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    values: dict[str, T] = {}
    for _ in range(max(1, repeats)):
        for name, run in runs.items():
            gc.collect()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            values[name] = run()
            walls[name].append(time.perf_counter() - wall0)
            cpus[name].append(time.process_time() - cpu0)
    return {
        name: (Sample(statistics.median(walls[name]), statistics.median(cpus[name]), tuple(walls[name])), values[name])
        for name in runs
    }


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: with few samples it reports an observed value, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct * len(ordered) / 100 - 1e-9))  # 99.9% of 1,000 is rank 999, not 1,000
    return ordered[min(rank, len(ordered)) - 1]


def default_settings(**overrides: object) -> Settings:
    """The shipped defaults (what an operator gets without setting anything), plus overrides by alias."""
    values: dict[str, object] = {
        "ARCHIVE_BUCKET_NAME": "bench-archive",
        "DISTRIBUTION_BUCKET_NAME": "bench-distribution",
        "IDEMPOTENCY_TABLE_NAME": "bench-claims",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, {platform.system()}"


def _fmt(cell: Cell) -> str:
    """Three significant figures or so: enough to compare, few enough to read."""
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, int):
        return f"{cell:,}"
    if isinstance(cell, str):
        return cell
    if math.isnan(cell):
        return "-"
    magnitude = abs(cell)
    decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
    return f"{cell:,.{decimals}f}"


#: CPU-bound neighbours for "a loaded machine": both cores of the two-core reference machine busy.
LOAD_PROCESSES = 2


def _spin(stop: Any) -> None:  # noqa: ANN401 - a multiprocessing Event
    """A CPU-bound neighbour: other work loading a core."""
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@contextlib.contextmanager
def busy_neighbours(count: int = LOAD_PROCESSES) -> Iterator[None]:
    """``count`` CPU-bound processes beside the measurement, for the block."""
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
