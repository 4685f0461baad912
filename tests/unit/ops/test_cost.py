"""The cost model's arithmetic, checked against figures worked out by hand, and the ``cost`` command line.

The expected numbers are written out step by step here rather than computed with the module's own
helpers, so a slip in the model cannot hide behind the same slip in the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_aggregator import telemetry
from data_aggregator.cli import main
from data_aggregator.ops.cost import (
    CostError,
    CostInputs,
    LineItem,
    estimate,
    firehose_billed_kb,
    load_prices,
    make_inputs,
    render,
)


def _items(report_items: list[LineItem]) -> dict[str, float]:
    return {f"{item.service}: {item.name}": item.quantity for item in report_items}


def test_design_volume_worked_by_hand() -> None:
    report = estimate(CostInputs())
    q = _items(report.items)
    # 864,000 files/day x 30 days = 25,920,000 files a month.
    files = 25_920_000
    assert q["S3 Landing: GET by the function"] == files
    assert q["S3 Landing: PUT by third parties (owner pays)"] == files
    # 10 files/s x 20 s window = 200 files an invocation (below the batch of 1,000): 129,600 invocations.
    assert report.derived["files_per_invocation"] == 200
    assert q["Lambda: requests"] == 129_600
    assert q["S3 Archive: PUT (one a bundle)"] == 129_600
    assert q["S3 Distribution: PUT (one a bundle)"] == 129_600
    assert q["S3 Distribution: consumer GET (one a bundle; DELETE free)"] == 129_600
    # 2 claim calls of 100 items each for 200 files.
    assert report.derived["claim_calls_per_invocation"] == 2
    # claim + intent + commit = 3 transactional item writes x 2 WRU = 6 WRU a file.
    assert q["DynamoDB: claim + intent + commit, 2 WRU per item"] == 25_920_000 * 6 == 155_520_000
    # One invocation: 0.2 s overhead + 200 x 0.005 s I/O + (200 x 102,400 B / 1,073,741,824 B/GB) x 3.46 s/GB
    #   = 0.2 + 1.0 + 0.019073486 x 3.46 = 1.265994 s; at 1,769 MB = 1.727539 GB:
    #   129,600 x 1.265994 x 1.727539 = 283,442 GB-s.
    seconds = 0.2 + 1.0 + 0.019073486328125 * 3.46
    assert report.derived["seconds_per_invocation"] == pytest.approx(seconds)
    assert q["Lambda: compute"] == pytest.approx(129_600 * seconds * 1769 / 1024)
    assert q["Lambda: compute"] == pytest.approx(283_442, abs=1)
    # SQS: 1 send a file; receives and deletes 10 a request; 5 idle pollers long-polling 20 s for 2,592,000 s.
    assert q["SQS: S3 event messages (SendMessage)"] == files
    assert q["SQS: ESM DeleteMessageBatch (10 a call)"] == 2_592_000
    assert q["SQS: ESM ReceiveMessage (10 a call + idle long polls)"] == 2_592_000 + 5 * 2_592_000 / 20
    # Bundles: 25,920,000 x 100 KB = 2,592,000,000 KB = 2,471.92 GB in; / 2.38 = 1,038.62 GB out.
    assert report.derived["input_gb_per_month"] == pytest.approx(2_592_000_000 / 1024**2)
    assert q["Data transfer: out to on-prem (bundles)"] == pytest.approx(2_471.923828125 / 2.38)
    # Landing holds 7 days of 82.397 GB/day = 576.78 GB; Distribution 21 days of 34.62 GB/day = 727.0 GB.
    assert q["S3 Landing: storage, Standard"] == pytest.approx(82.3974609375 * 7)
    assert q["S3 Distribution: storage, noncurrent versions kept"] == pytest.approx(82.3974609375 / 2.38 * 21)
    # Archive at 12 months: 30 days in Standard, 330 in Deep Archive.
    assert q["S3 Archive: storage, Standard before the transition"] == pytest.approx(82.3974609375 / 2.38 * 30)
    assert q["S3 Archive: storage, Deep Archive"] == pytest.approx(82.3974609375 / 2.38 * 330)
    # Consumer polls every 10 s: 259,200 LISTs.
    assert q["S3 Distribution: consumer LIST (one a poll)"] == 259_200


def test_each_cost_is_quantity_times_price_and_the_total_their_sum() -> None:
    report = estimate(CostInputs())
    prices = load_prices("eu-west-2")
    lambda_compute = next(i for i in report.items if i.name == "compute")
    assert lambda_compute.unit_price == prices.usd["lambda_arm_gb_second"]
    for item in report.items:
        assert item.monthly_usd == pytest.approx(item.quantity * item.unit_price)
    assert report.total_usd == pytest.approx(sum(i.monthly_usd for i in report.items))
    # DynamoDB: 155,520,000 WRU x 0.7068 USD per million = 109.92 USD.
    dynamodb = next(i for i in report.items if i.service == "DynamoDB")
    assert dynamodb.monthly_usd == pytest.approx(155.52 * 0.7068)


def test_a_full_batch_caps_files_per_invocation() -> None:
    # 8,640,000 files/day = 100 files/s; x 20 s = 2,000, capped at the batch of 1,000: 10 claim calls.
    report = estimate(CostInputs(files_per_day=8_640_000))
    assert report.derived["files_per_invocation"] == 1000
    assert report.derived["claim_calls_per_invocation"] == 10
    assert report.derived["invocations_per_month"] == 8_640_000 * 30 / 1000


@pytest.mark.parametrize(("record_kb", "billed_kb"), [(7, 10), (5, 5), (0.1, 5), (100, 100), (100.5, 105)])
def test_firehose_rounds_each_record_up_to_5_kb(record_kb: float, billed_kb: float) -> None:
    assert firehose_billed_kb(record_kb) == billed_kb


def test_firehose_comparison_bills_7_kb_records_as_10_kb() -> None:
    report = estimate(CostInputs(files_per_day=1_000_000, avg_kb=7))
    firehose = next(c for c in report.comparisons if "Firehose" in c.name)
    # 30,000,000 records x 10 KB = 300,000,000 KB = 286.102 GB billed at 0.031 USD; plus the larger of
    # 200.27 GB in / 128 MB buffers (1,602) and 2,592,000 s / 900 s (2,880) delivery PUTs at 0.0053 / 1,000.
    billed_gb = 30_000_000 * 10 / 1024**2
    assert firehose.low_usd == pytest.approx(billed_gb * 0.031 + 2_880 * 0.0000053)


def test_design_estimate_is_converted_at_the_stated_rate() -> None:
    report = estimate(CostInputs(usd_per_gbp=1.25))
    design = next(c for c in report.comparisons if c.name == "design estimate")
    assert design.low_usd == pytest.approx(342 * 1.25)
    assert design.high_usd == pytest.approx(982 * 1.25)


def test_every_line_item_has_a_source() -> None:
    report = estimate(CostInputs())
    for item in report.items:
        assert item.quantity_source.split()[0] in ("measured", "configured"), item
        assert item.price_source.startswith("price list eu-west-2.json"), item
        assert "https://aws.amazon.com/" in item.price_source, item


def test_the_default_metric_count_is_what_the_functions_emit() -> None:
    assert CostInputs().custom_metrics == len(telemetry.HANDLER_METRICS) + len(telemetry.MONITOR_METRICS)


def test_bad_values_are_one_line_errors() -> None:
    with pytest.raises(CostError, match="--avg-kb"):
        make_inputs(avg_kb="-1")
    with pytest.raises(CostError, match="no price list"):
        load_prices("ap-nowhere-1")


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "--avg-kb", "abc"],
        ["cost", "--files-per-day", "0"],
        ["cost", "--memory-mb", "99999"],
        ["cost", "--region", "ap-nowhere-1"],
    ],
)
def test_cost_command_bad_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("data-aggregator cost: error: ")


def test_cost_command_prints_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost"]) == 0
    table = capsys.readouterr().out
    assert "total" in table
    assert "not on Graviton" in table
    assert "design estimate" in table
    assert "Firehose" in table
    assert main(["cost", "--json", "--files-per-day", "100000", "--avg-kb", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"]["files_per_day"] == 100_000
    assert data["total_usd"] == pytest.approx(sum(i["monthly_usd"] for i in data["items"]))
    assert all(i["source"] for i in data["items"])


def test_docs_show_the_current_default_output() -> None:
    """docs/cost.md quotes the default output; a price or model change must update it too."""
    docs = (Path(__file__).resolve().parents[3] / "docs" / "cost.md").read_text(encoding="utf-8")
    assert render(estimate(CostInputs())) in docs
