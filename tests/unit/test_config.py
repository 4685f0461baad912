"""Settings fail fast, naming the variable that is wrong."""

from __future__ import annotations

import pytest

from data_aggregator.config import MIB, Settings
from data_aggregator.errors import ConfigError
from tests.support import BASE_ENV


def test_defaults() -> None:
    settings = Settings.from_env(BASE_ENV)
    assert settings.idempotency_ttl_days == 7
    assert settings.dynamodb_ttl_attribute == "ttl"
    assert settings.bundle_prefix == "bundles/"
    assert settings.fetch_chunk_bytes <= MIB


@pytest.mark.parametrize("missing", sorted(BASE_ENV))
def test_missing_required_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing}: Field required"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("FETCH_CONCURRENCY", "many", "FETCH_CONCURRENCY: Input should be a valid integer"),
        ("FETCH_CONCURRENCY", "0", "FETCH_CONCURRENCY: Input should be greater than or equal to 1"),
        ("FETCH_CHUNK_BYTES", str(2 * MIB), "FETCH_CHUNK_BYTES: Input should be less than or equal to 1048576"),
        ("COMPRESSION_LEVEL", "9", "COMPRESSION_LEVEL"),
        ("BUNDLE_PREFIX", "bundles", "BUNDLE_PREFIX: Value error, must be empty or end with '/'"),
        ("BUNDLE_PREFIX", "/abs/", "BUNDLE_PREFIX: Value error, must be a relative prefix"),
        ("IDEMPOTENCY_TTL_DAYS", "0", "IDEMPOTENCY_TTL_DAYS"),
    ],
)
def test_invalid_values_are_named(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")) as caught:
        Settings.from_env({**BASE_ENV, name: value})
    assert f"(got '{value}')" in str(caught.value)


def test_archive_and_distribution_must_differ() -> None:
    env = {**BASE_ENV, "DISTRIBUTION_BUCKET_NAME": BASE_ENV["ARCHIVE_BUCKET_NAME"]}
    with pytest.raises(ConfigError, match="must differ"):
        Settings.from_env(env)


def test_empty_prefix_is_allowed() -> None:
    assert Settings.from_env({**BASE_ENV, "BUNDLE_PREFIX": ""}).bundle_prefix == ""
