"""The distribution monitor against moto's S3: pagination, ages and the EMF it prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from data_aggregator import monitor
from data_aggregator.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "distribution-test-bucket"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Client]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _list_calls(client: S3Client) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    client.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    return calls


def _emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def test_empty_bucket(s3: S3Client) -> None:
    source = monitor.DistributionBucket(s3, BUCKET)
    assert list(source.objects()) == []
    backlog = monitor.measure_backlog(source.objects(), s3.list_buckets()["Buckets"][0]["CreationDate"])
    assert backlog == monitor.Backlog(object_count=0, total_bytes=0, oldest_age_seconds=0.0)


def test_more_than_one_page_is_counted_in_full(s3: S3Client) -> None:
    sizes = {f"bundles/2026/11/20/12/{i:05d}.tar.gz": i % 7 for i in range(1234)}
    for key, size in sizes.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * size)
    calls = _list_calls(s3)

    listed = list(monitor.DistributionBucket(s3, BUCKET).objects())

    assert len(calls) == 2, "1,234 keys need exactly two pages of 1,000"
    assert {item.key: item.size for item in listed} == sizes


def test_ages_come_from_last_modified(s3: S3Client) -> None:
    for key in ("first", "second", "third"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"abc")
    stamps = {key: s3.head_object(Bucket=BUCKET, Key=key)["LastModified"] for key in ("first", "second", "third")}
    now = max(stamps.values()) + timedelta(minutes=10)

    backlog = monitor.measure_backlog(monitor.DistributionBucket(s3, BUCKET).objects(), now)

    assert backlog.object_count == 3
    assert backlog.total_bytes == 9
    assert backlog.oldest_age_seconds == (now - min(stamps.values())).total_seconds()
    assert backlog.oldest_age_seconds >= 600


def test_handler_prints_the_three_metrics_as_emf(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="bundles/a.tar.gz", Body=b"0123456789")
    s3.put_object(Bucket=BUCKET, Key="bundles/b.tar.gz", Body=b"01234")
    monkeypatch.setenv("DISTRIBUTION_BUCKET_NAME", BUCKET)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "data-aggregator")
    monkeypatch.setattr(monitor.metrics, "service", "data-aggregator")

    result = monitor.handler({"source": "aws.events"}, None)

    assert result["object_count"] == 2.0
    assert result["total_bytes"] == 15.0
    documents = _emf_lines(capsys.readouterr().out)
    assert len(documents) == 1
    doc = documents[0]
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "DataAggregator"
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "DistributionObjectCount": "Count",
        "DistributionOldestObjectAgeSeconds": "Seconds",
        "DistributionBytes": "Bytes",
    }
    assert sorted(directive["Dimensions"][0]) == ["DistributionBucket", "service"]
    assert doc["DistributionBucket"] == BUCKET
    assert doc["service"] == "data-aggregator"
    # Powertools writes each value as a list of datapoints.
    assert doc["DistributionObjectCount"] == [2.0]
    assert doc["DistributionBytes"] == [15.0]
    assert doc["DistributionOldestObjectAgeSeconds"][0] >= 0


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_handler_without_bucket_fails_naming_the_variable(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTRIBUTION_BUCKET_NAME", raising=False)
    with pytest.raises(ConfigError, match="DISTRIBUTION_BUCKET_NAME"):
        monitor.handler({}, None)
