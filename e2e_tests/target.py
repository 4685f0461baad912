"""What a scenario needs from the pipeline it runs against, whether emulated here or deployed in AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.uploader import UploadedFile
from e2e_tests.faults import FaultInjector, InjectionCount


@dataclass(frozen=True, slots=True)
class Resources:
    """Where the pipeline's pieces are."""

    landing: str
    archive: str
    distribution: str
    queue_url: str
    dlq_url: str
    region: str
    bundle_prefix: str = "bundles/"
    table: str | None = None
    """The idempotency table, where the target can read it (diagnosis of lost files)."""


@dataclass(slots=True)
class Invocations:
    """What the function did, as far as the target can tell."""

    invocations: int = 0
    failed_messages: int = 0
    errors: int = 0
    durations: list[float] = field(default_factory=list)


@dataclass(slots=True)
class MemoryFigures:
    """Peak resident memory, in MiB: this process (the uploader, the handler, the consumer) and the emulator."""

    runner_start_mib: float
    runner_peak_mib: float
    emulator_peak_mib: float | None
    exact: bool
    """True when the peak comes from the kernel's high-water mark reset at the start, not from sampling."""

    @property
    def growth_mib(self) -> float:
        """How far the runner's memory rose above where it started."""
        return max(0.0, self.runner_peak_mib - self.runner_start_mib)


@dataclass(slots=True)
class TargetFindings:
    """Evidence only the target can give; each part is None when it cannot."""

    invocations: Invocations | None = None
    metrics: dict[str, float] | None = None
    faults: list[InjectionCount] = field(default_factory=list)
    killed_bundles: list[str] = field(default_factory=list)
    unconfirmed_writes: list[str] = field(default_factory=list)
    memory: MemoryFigures | None = None
    notes: list[str] = field(default_factory=list)


class Target(Protocol):
    """A pipeline to run one scenario against; a context manager that sets it up and tears it down."""

    kind: str
    resources: Resources
    clients: Clients
    key_prefix: str
    """Uploads go under this prefix, so a run never mixes with other traffic."""
    run_marker: str
    """Text in every message this run sends, to tell its dead letters from anyone else's."""
    workdir: Path
    injector: FaultInjector | None
    drain_timeout_seconds: float
    """How long the run keeps waiting once nothing moves any more (files delivered, queue depths)."""

    def start_processing(self) -> None:
        """Let the function consume the queue."""

    def stop_processing(self) -> None:
        """Stop consuming; an invocation in progress finishes first."""

    def notification_for(self, upload: UploadedFile) -> str:
        """A notification naming the same object as the one S3 sent for ``upload``."""

    def notifications_seen(self) -> list[str] | None:
        """Every S3 notification body the function received, once each (None: unknown to the target)."""

    def messages_in_flight(self) -> list[str] | None:
        """Bodies of the messages the function failed and nobody acknowledged since (None: unknown).

        They are invisible in the queue until their visibility timeout, so only the target can say
        what they name when a run stops waiting.
        """

    def status(self) -> str:
        """A few words on the function's progress, for the status line."""

    def findings(self) -> TargetFindings:
        """Invocation counts, metrics, faults and memory, as far as the target can tell."""
