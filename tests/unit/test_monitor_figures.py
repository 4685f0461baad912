"""The backlog arithmetic and configuration checks of the distribution monitor, without AWS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from data_aggregator.errors import ConfigError
from data_aggregator.monitor import BUCKET_VARIABLE, Backlog, ListedObject, bucket_from_env, measure_backlog

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def _obj(key: str, size: int, age_seconds: float) -> ListedObject:
    return ListedObject(key=key, size=size, last_modified=NOW - timedelta(seconds=age_seconds))


def test_empty_listing_reports_zeroes() -> None:
    assert measure_backlog([], NOW) == Backlog(object_count=0, total_bytes=0, oldest_age_seconds=0.0)


def test_counts_sums_and_takes_the_oldest_whatever_the_order() -> None:
    listing = [_obj("b", 10, 30), _obj("a", 5, 3600.5), _obj("c", 0, 1)]
    assert measure_backlog(listing, NOW) == Backlog(object_count=3, total_bytes=15, oldest_age_seconds=3600.5)


def test_consumes_a_one_shot_iterator() -> None:
    def once() -> Iterator[ListedObject]:
        yield _obj("x", 7, 120)
        yield _obj("y", 8, 60)

    assert measure_backlog(once(), NOW) == Backlog(object_count=2, total_bytes=15, oldest_age_seconds=120.0)


def test_object_stamped_after_now_counts_as_zero_age() -> None:
    backlog = measure_backlog([_obj("skewed", 1, -5)], NOW)
    assert backlog.oldest_age_seconds == 0.0
    assert backlog.object_count == 1


def test_missing_bucket_variable_names_it() -> None:
    with pytest.raises(ConfigError, match=BUCKET_VARIABLE):
        bucket_from_env({})
    with pytest.raises(ConfigError, match="DISTRIBUTION_BUCKET_NAME"):
        bucket_from_env({BUCKET_VARIABLE: "  "})


def test_bucket_variable_is_read() -> None:
    assert bucket_from_env({"DISTRIBUTION_BUCKET_NAME": "dist-bucket"}) == "dist-bucket"
