"""Shared fixtures: an offline AWS environment (moto, in-process) shaped like the dev deployment."""

from __future__ import annotations

import os

import pytest

# Set before anything imports boto3 or Powertools: no real credentials, no tracing, fixed region.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - the emulator's dummy credentials
    AWS_SESSION_TOKEN="testing",  # noqa: S106
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_SERVICE_NAME="data-aggregator",
    POWERTOOLS_METRICS_NAMESPACE="DataAggregator",
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process moto intercepts calls itself; an endpoint left over from the environment would not."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the run free of noise a reader would have to learn to ignore.

    Powertools warns "No application metrics to publish" whenever an invocation ends before it
    emitted a metric; the crash, kill and missing-configuration tests end invocations exactly there
    on purpose, so for them the warning is the expected behaviour, not a finding.
    """
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")
