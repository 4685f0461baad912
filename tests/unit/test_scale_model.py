"""The scale model (benchmarks/scale.py) keeps its promises: every file delivered once, limits that
bind slow it down, and with nothing binding latency stays within window + invocation.

These run small simulated loads (simulated seconds, not wall-clock); nothing here times anything.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest

from benchmarks.common import SMOKE
from benchmarks.scale import (
    Calibration,
    Limit,
    Limits,
    Load,
    Outcome,
    Pipeline,
    Scenario,
    ceilings,
    phases,
    plan,
    run,
    simulate,
)

# A fixed event delay and no tail, so bounds can be computed exactly.
STEADY = Load(
    rate=20.0,
    burst_factor=1.0,
    duration_s=120.0,
    event_delay_median_s=0.5,
    event_delay_sigma=0.0,
    event_tail_fraction=0.0,
)


def _exactly_once(outcome: Outcome) -> None:
    assert outcome.files > 0
    assert outcome.delivered == outcome.files
    assert set(outcome.deliveries) == {1}, "a file was lost or delivered twice"
    assert len(outcome.latencies) == outcome.files
    assert min(outcome.latencies) > 0


def test_smoke_runs_every_scenario_and_reports_tables_figures_and_n1_targets() -> None:
    result = run(SMOKE)
    assert result.name == "scale"
    assert len(result.tables) >= 4
    for table in result.tables:
        assert table.rows
        assert all(len(row) == len(table.headers) for row in table.rows)
    assert all(math.isfinite(v) for v in result.figures.values())
    assert [t.name.startswith("SPEC N1") for t in result.targets] == [True, True]
    scenarios = plan(smoke=True)
    for scenario in (*scenarios.volumes, *scenarios.tuned, *scenarios.validation):
        assert result.figures[f"undelivered[{scenario.label}]"] == 0, scenario.name
        assert result.figures[f"peak_concurrency[{scenario.label}]"] >= 1


def test_a_smoke_scenario_delivers_every_file_once_and_reports_every_limit() -> None:
    outcome = simulate(plan(smoke=True).volumes[1])
    _exactly_once(outcome)
    assert outcome.invocations > 0
    assert 0 < outcome.mean_concurrency <= outcome.peak_concurrency
    assert {use.limit for use in outcome.limits} == set(Limit)


def test_same_seed_same_figures() -> None:
    first, second = simulate(Scenario("a", STEADY)), simulate(Scenario("a", STEADY))
    assert first.latencies == second.latencies
    assert first.invocations == second.invocations
    assert simulate(Scenario("b", STEADY, seed=2)).latencies != first.latencies


def test_with_nothing_binding_latency_is_bounded_by_delay_window_and_one_invocation() -> None:
    pipeline = Pipeline(batch_size=1000, batching_window_seconds=20.0, max_concurrency=10)
    outcome = simulate(Scenario("free", STEADY, pipeline=pipeline))
    _exactly_once(outcome)
    held = {use.limit: use.held_back_s for use in outcome.limits}
    assert held[Limit.ESM_CONCURRENCY] == 0
    assert held[Limit.DYNAMODB] == 0
    # The largest batch a slot can gather in one window is every file of the window.
    largest = int(STEADY.rate * pipeline.batching_window_seconds * 2)
    slowest = phases(largest, largest * STEADY.mean_file_bytes * 20, pipeline, Calibration(), cold=True).total
    bound = STEADY.event_delay_median_s + pipeline.batching_window_seconds + slowest
    assert outcome.pct(100) <= bound
    # ... and the window is really what sets it: nearly every file waits for a window to close.
    assert outcome.pct(50) > pipeline.batching_window_seconds / 4


def test_one_slot_slower_than_the_arrivals_builds_a_growing_backlog() -> None:
    # 20 files/s arrive; one slot processes 100 files in >= 10 s: it cannot keep up.
    slow = Calibration(cpu_s_per_file=0.1, arm64_byte_slowdown=1.0)
    pipeline = Pipeline(batch_size=100, batching_window_seconds=1.0, fixed_pollers=1)
    outcome = simulate(Scenario("slow", STEADY, pipeline=pipeline, calibration=slow))
    _exactly_once(outcome)
    tenth = outcome.files // 10
    early, late = outcome.latencies[:tenth], outcome.latencies[-tenth:]  # files in landing order
    assert statistics.mean(late) > 5 * statistics.mean(early)
    assert outcome.pct(99.9) > STEADY.duration_s  # the last files wait most of the run
    assert outcome.peak_concurrency == 1
    held = {use.limit: use.held_back_s for use in outcome.limits}
    assert held[Limit.ESM_CONCURRENCY] > STEADY.duration_s / 2


def test_same_load_with_more_slots_keeps_up() -> None:
    slow = Calibration(cpu_s_per_file=0.1, arm64_byte_slowdown=1.0)
    one = simulate(Scenario("1", STEADY, pipeline=Pipeline(batch_size=100, fixed_pollers=1), calibration=slow))
    many = simulate(Scenario("8", STEADY, pipeline=Pipeline(batch_size=100, fixed_pollers=8), calibration=slow))
    assert many.pct(95) < one.pct(95) / 3


def test_dynamodb_throughput_caps_files_per_second() -> None:
    limits = Limits(table_wru_per_s=300.0)  # 6 WRU per file: at most 50 files/s
    load = replace(STEADY, rate=200.0, duration_s=30.0)
    outcome = simulate(Scenario("ddb", load, limits=limits))
    _exactly_once(outcome)
    wru = outcome.files * Calibration().dynamodb_writes_per_file * Calibration().wru_per_item
    assert outcome.end_s >= (wru - limits.table_wru_per_s) / limits.table_wru_per_s
    use = next(u for u in outcome.limits if u.limit is Limit.DYNAMODB)
    assert use.utilisation > 1
    assert use.held_back_s > 0
    assert outcome.binding.limit in {Limit.DYNAMODB, Limit.LANDING_PUT}


def test_payload_cap_invokes_before_the_batch_size() -> None:
    limits = Limits(payload_bytes=10 * 1500, message_bytes=1500)
    outcome = simulate(Scenario("payload", STEADY, limits=limits))
    _exactly_once(outcome)
    assert outcome.files_per_invocation <= 10
    assert outcome.invocations >= outcome.files / 10


def test_sqs_in_flight_limit_is_never_exceeded_and_holds_work_back() -> None:
    limits = Limits(sqs_in_flight=50)
    load = replace(STEADY, rate=100.0, duration_s=30.0)
    outcome = simulate(Scenario("in-flight", load, pipeline=Pipeline(batch_size=100), limits=limits))
    _exactly_once(outcome)
    use = next(u for u in outcome.limits if u.limit is Limit.SQS_IN_FLIGHT)
    assert use.peak <= 50
    assert use.held_back_s > 0


def test_the_mapping_ramps_up_from_five_batches() -> None:
    slow = Calibration(cpu_s_per_file=0.05, arm64_byte_slowdown=1.0)
    load = replace(STEADY, rate=500.0, duration_s=60.0)
    outcome = simulate(Scenario("ramp", load, pipeline=Pipeline(batch_size=100, max_concurrency=40), calibration=slow))
    _exactly_once(outcome)
    assert 5 < outcome.peak_concurrency <= 40
    held = {use.limit: use.held_back_s for use in outcome.limits}
    assert held[Limit.ESM_RAMP] > 0


@pytest.mark.parametrize("rate", [10.0, 100.0])
def test_bursts_raise_the_tail_not_the_files(rate: float) -> None:
    calm = simulate(Scenario("calm", replace(STEADY, rate=rate, duration_s=60.0)))
    burst = simulate(
        Scenario("burst", replace(STEADY, rate=rate, duration_s=60.0, burst_factor=10.0, burst_start_s=10, burst_s=10))
    )
    _exactly_once(burst)
    assert burst.files > calm.files * 2
    assert burst.peak_concurrency >= calm.peak_concurrency


def test_paper_ceilings_follow_from_the_calibration() -> None:
    by_limit = {c.limit: c.files_per_s for c in ceilings(Pipeline(), Limits(), Calibration(), 100_000)}
    assert by_limit[Limit.DYNAMODB] == pytest.approx(4000 / 6)
    assert by_limit[Limit.DYNAMODB_QUOTA] == pytest.approx(40_000 / 6)
    assert by_limit[Limit.LANDING_GET] == 5500
    full = phases(1000, 1000 * 100_000, Pipeline(), Calibration())
    assert by_limit[Limit.ESM_CONCURRENCY] == pytest.approx(10 * 1000 / full.total)


def test_the_timeout_guard_leaves_files_for_after_the_visibility_timeout() -> None:
    # ~600 files at 0.1 s each need ~60 s; the guard allows 60 - 10 = 50 s, so the last ~100 wait for a retry.
    slow = Calibration(cpu_s_per_file=0.1, arm64_byte_slowdown=1.0)
    pipeline = Pipeline(batch_size=1000, batching_window_seconds=5.0, fixed_pollers=1, visibility_timeout_seconds=420)
    load = replace(STEADY, rate=200.0, duration_s=3.0)
    outcome = simulate(Scenario("guard", load, pipeline=pipeline, calibration=slow))
    _exactly_once(outcome)
    assert 0 < outcome.retried < outcome.files
    assert outcome.pct(100) >= 420
    assert outcome.pct(50) < 420  # the first part made it on the first attempt
    use = next(u for u in outcome.limits if u.limit is Limit.TIMEOUT)
    assert use.utilisation > 1
    assert use.held_back_s >= 420
