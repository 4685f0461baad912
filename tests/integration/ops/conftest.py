"""One moto server per session; every test gets its own uniquely named buckets and queues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from data_aggregator.sandbox.emulator import Clients, Emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.fixture(scope="session")
def clients(emulator: Emulator) -> Clients:
    """Shared clients (building them is the slow part); tests that add botocore hooks use ``private_clients``."""
    return emulator.clients()


@pytest.fixture
def private_clients(emulator: Emulator) -> Clients:
    """Clients of this test alone, for botocore event hooks that must not leak into other tests."""
    return emulator.clients()


@pytest.fixture
def aws_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Point any client built from the environment (the CLI's) at the emulator."""
    for name, value in emulator.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return emulator


@dataclass(frozen=True)
class Buckets:
    archive: str
    distribution: str


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def buckets(clients: Clients) -> Buckets:
    names = Buckets(archive=unique("archive"), distribution=unique("distribution"))
    for name in (names.archive, names.distribution):
        clients.s3.create_bucket(Bucket=name)
        clients.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return names
