"""Thousands of hostile bundles: each is a report, never an exception, a hang or a write outside.

A hang cannot be asserted with a clock, so the source stream counts the reads made of it and fails
the test past a bound no honest scan comes near: a scan that spins on the end of a stream shows up
as a failure naming its seed instead of a stuck test run. Work that reads few bytes but builds much
(quadratic path bookkeeping, a parsed sparse map, one object per member) shows up in memory instead,
so each scan's peak of traced allocations is bounded too: an honest scan's peak is about one read
chunk (1 MiB).
"""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest

from data_aggregator.ops.bundles import ExpansionLimits, scan_bundle
from data_aggregator.ops.extract import SafeExtractor
from tests.hostile_bundles import hostile_bundle

CASES = 3000
EXTRACT_EVERY = 7
MAX_READS = 20_000
MAX_PEAK_BYTES = 4 * 1024 * 1024
LIMITS = ExpansionLimits(max_ratio=20, max_bytes=64 * 1024 * 1024, floor_bytes=256 * 1024, max_members=200)


class SpinGuard(io.BytesIO):
    """A bundle stream that refuses to be read absurdly often (what a spinning scan would do)."""

    reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        if self.reads > MAX_READS:
            raise AssertionError("the scan keeps reading an exhausted stream")
        return super().read(size)


def _files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


@pytest.mark.parametrize("block", range(10))
def test_hostile_bundles_are_reports_not_crashes(block: int, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    accepted = 0
    for seed in range(block, CASES, 10):
        data = hostile_bundle(seed)
        target = tmp_path / "t" / str(seed)
        extractor = SafeExtractor(target, durable=False) if seed % EXTRACT_EVERY == 0 else None
        tracemalloc.start()
        try:
            report = scan_bundle(
                SpinGuard(data), source=f"seed {seed}", compressed_size=len(data), limits=LIMITS, open_member=extractor
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= MAX_PEAK_BYTES, (seed, peak)
        accepted += report.ok
        assert report.object_size == len(data), seed
        if extractor is not None:
            written = _files_under(target)
            assert all(path.resolve().is_relative_to(target.resolve()) for path in written), seed
            assert sum(path.stat().st_size for path in written) <= LIMITS.allowance(len(data)), seed
    assert _files_under(outside) == []
    assert accepted <= CASES // 10  # hostile input is (nearly) never a good bundle


def test_a_bomb_is_stopped_at_its_allowance(tmp_path: Path) -> None:
    data = hostile_bundle(0)  # seed 0 is a bomb
    target = tmp_path / "t"
    report = scan_bundle(
        io.BytesIO(data),
        source="bomb",
        compressed_size=len(data),
        limits=LIMITS,
        open_member=SafeExtractor(target, durable=False),
    )
    assert any("expansion limit" in p for p in report.problems), report.problems
    assert sum(p.stat().st_size for p in _files_under(target)) <= LIMITS.allowance(len(data))
