"""Distribution backlog monitor, run on a schedule.

Distribution is a mailbox that the on-premise consumer empties; when the consumer stops, bundles pile up
there and nothing in the pipeline itself fails, so no other alarm would notice (SPEC N4). This Lambda
lists the bucket and publishes three figures as EMF metrics for the backlog alarms: how many bundles
wait, how many bytes they hold, and how long the oldest has waited.

The arithmetic is a pure function over listed objects so it is tested without AWS; the S3 access is a
small facade around an injected client so tests hand it a moto-backed one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from data_aggregator import telemetry
from data_aggregator.config import Settings
from data_aggregator.errors import ConfigError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_s3 import S3Client

# The variable name comes from the settings model so the monitor and the main function cannot drift apart.
BUCKET_VARIABLE: str = Settings.model_fields["distribution_bucket_name"].alias or "DISTRIBUTION_BUCKET_NAME"
DEFAULT_NAMESPACE = "DataAggregator"
BUCKET_DIMENSION = telemetry.DISTRIBUTION_BUCKET_DIMENSION

METRIC_OBJECT_COUNT = telemetry.DISTRIBUTION_OBJECT_COUNT
METRIC_OLDEST_AGE = telemetry.DISTRIBUTION_OLDEST_AGE
METRIC_BYTES = telemetry.DISTRIBUTION_BYTES

# S3 returns at most 1,000 keys per page; asking for the maximum keeps the number of calls minimal.
_PAGE_SIZE = 1000

logger = Logger()
# Namespace from POWERTOOLS_METRICS_NAMESPACE when set (Terraform sets it), else the product's namespace,
# so a missing variable never turns into a flush-time schema error.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE)


@dataclass(frozen=True, slots=True)
class ListedObject:
    """The three listing fields the backlog figures need; nothing about the content."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits in Distribution at one instant."""

    object_count: int
    total_bytes: int
    oldest_age_seconds: float


def measure_backlog(objects: Iterable[ListedObject], now: datetime) -> Backlog:
    """Reduce a listing to the backlog figures in one pass (the listing can be large).

    An empty bucket has an oldest age of zero rather than no value, so the age alarm sees a healthy
    datapoint instead of missing data. Ages are clamped at zero: S3's clock may run slightly ahead of
    ours, and a negative age would only confuse dashboards.
    """
    count = 0
    total = 0
    oldest: datetime | None = None
    for item in objects:
        count += 1
        total += item.size
        if oldest is None or item.last_modified < oldest:
            oldest = item.last_modified
    age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return Backlog(object_count=count, total_bytes=total, oldest_age_seconds=age)


class DistributionBucket:
    """Read-only view of the Distribution bucket: its current objects, page by page."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @property
    def name(self) -> str:
        """The bucket's name, used as a metric dimension."""
        return self._bucket

    def objects(self) -> Iterator[ListedObject]:
        """Yield every current object lazily, so memory stays flat however large the backlog grows."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._bucket, PaginationConfig={"PageSize": _PAGE_SIZE})
        for page in pages:
            for item in page.get("Contents", []):
                yield ListedObject(key=item["Key"], size=item["Size"], last_modified=item["LastModified"])


def bucket_from_env(environ: Mapping[str, str]) -> str:
    """Fail fast, naming the variable, when the deployment forgot to configure the bucket."""
    value = environ.get(BUCKET_VARIABLE, "").strip()
    if not value:
        raise ConfigError(f"invalid configuration: {BUCKET_VARIABLE}: Field required")
    return value


def publish(sink: Metrics, backlog: Backlog, bucket: str) -> None:
    """Record the figures with a bucket dimension so environments sharing an account stay apart."""
    sink.add_dimension(name=BUCKET_DIMENSION, value=bucket)
    sink.add_metric(name=METRIC_OBJECT_COUNT, unit=MetricUnit.Count, value=backlog.object_count)
    sink.add_metric(name=METRIC_OLDEST_AGE, unit=MetricUnit.Seconds, value=backlog.oldest_age_seconds)
    sink.add_metric(name=METRIC_BYTES, unit=MetricUnit.Bytes, value=backlog.total_bytes)


def run(source: DistributionBucket, sink: Metrics, now: datetime) -> Backlog:
    """One measurement: list, reduce, record; separated from the handler so tests choose the clock."""
    backlog = measure_backlog(source.objects(), now)
    publish(sink, backlog, source.name)
    logger.info(
        "distribution backlog measured",
        extra={"bucket": source.name, **asdict(backlog)},
    )
    return backlog


# Not raise_on_empty_metrics: a configuration error must surface as itself, not as an EMF schema error.
@metrics.log_metrics
def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, float]:
    """EventBridge schedule entry point; the event carries nothing we need."""
    del event, context
    bucket = bucket_from_env(os.environ)
    # Standard retry mode backs off on throttling; a failed run is simply retried by the next schedule.
    client = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    backlog = run(DistributionBucket(client, bucket), metrics, datetime.now(UTC))
    return {key: float(value) for key, value in asdict(backlog).items()}
