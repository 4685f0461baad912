"""Scenario configuration: one JSON file per scenario, validated completely before anything starts.

A typo in a config should cost a second, not a five-minute run that tests something else: unknown
fields are refused, every number has its range, combinations that cannot work (a visibility timeout
shorter than the claim lease when invocations are killed) are refused with the reason, and the
handler's extra environment is checked against the handler's own settings model.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_aggregator.config import Settings
from data_aggregator.errors import ConfigError
from data_aggregator.sandbox.esm import MappingSettings
from data_aggregator.sandbox.provision import NotificationPath
from e2e_tests.faults import FaultRule, KillRule

# The handler extends a lease shorter than the invocation's remaining time plus this margin (app.py).
LEASE_MARGIN_SECONDS = 30
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_PLACEHOLDER_ENV = {
    "ARCHIVE_BUCKET_NAME": "placeholder-archive",
    "DISTRIBUTION_BUCKET_NAME": "placeholder-distribution",
    "IDEMPOTENCY_TABLE_NAME": "placeholder-table",
}
# Set by the target, never by a scenario.
_RESERVED_ENV = frozenset({*_PLACEHOLDER_ENV, "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"})

ContentKind = Literal["random", "jsonl", "compressible"]
KeyStyle = Literal["regular", "awkward"]
PoisonKind = Literal[
    "not_json",
    "json_array",
    "no_records",
    "records_not_a_list",
    "foreign_event_source",
    "good_and_bad_records",
    "test_event",
    "non_created_event",
    "sns_not_s3",
    "sns_test_event",
    "eventbridge_no_key",
    "eventbridge_object_deleted",
]
# Poison that the handler must fail (and SQS dead-letter); the other kinds are acknowledged.
DEAD_LETTER_KINDS: frozenset[str] = frozenset(
    {
        "not_json",
        "json_array",
        "no_records",
        "records_not_a_list",
        "foreign_event_source",
        "good_and_bad_records",
        "sns_not_s3",
        "eventbridge_no_key",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileGroup(_Strict):
    """Files alike in size, content and key style."""

    count: Annotated[int, Field(ge=1, le=100_000)]
    size: Annotated[int, Field(ge=0, le=4 * 1024**3)]
    """Bytes per file; with ``size_max``, the smallest size."""
    size_max: Annotated[int, Field(ge=0, le=4 * 1024**3)] | None = None
    content: ContentKind = "jsonl"
    keys: KeyStyle = "regular"
    versions: Annotated[int, Field(ge=1, le=10)] = 1
    """Write every key this many times, each time with other bytes (versioned overwrite)."""
    delete_after_upload: bool = False
    """Delete each file right after uploading it: its notification then names a missing object."""

    @model_validator(mode="after")
    def _sizes_in_order(self) -> Self:
        if self.size_max is not None and self.size_max < self.size:
            raise ValueError("size_max must be >= size")
        return self


class Upload(_Strict):
    """The third party's side: what is uploaded, by how many threads, how fast."""

    files: list[FileGroup] = Field(min_length=1)
    threads: Annotated[int, Field(ge=1, le=64)] = 8
    rate: Annotated[float, Field(gt=0)] | None = None
    """Files per second over all threads; unset uploads as fast as the threads go."""

    @property
    def total_files(self) -> int:
        """Objects written, counting every version."""
        return sum(group.count * group.versions for group in self.files)


class Processing(_Strict):
    """How the event source mapping and the emulated function run (local target)."""

    start: Literal["with_uploads", "after_uploads"] = "with_uploads"
    """``after_uploads`` lets a backlog build up in the queue before any invocation starts."""
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    window_seconds: Annotated[float, Field(ge=0, le=300)] = 1.0
    function_timeout_seconds: Annotated[float, Field(ge=1, le=900)] = 15.0
    claim_lease_seconds: Annotated[int, Field(ge=1)] | None = None
    """Unset: the smallest lease the handler keeps (function timeout + 30 s)."""
    visibility_timeout: Annotated[int, Field(ge=1, le=43_200)] | None = None
    """Unset: five seconds above the effective lease."""
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 5
    pollers: Annotated[int, Field(ge=1, le=16)] = 1
    handler_env: dict[str, str] = Field(default_factory=dict)
    """Extra handler settings (``MAX_FILES_PER_BUNDLE``...), checked against the handler's own model."""

    @field_validator("handler_env")
    @classmethod
    def _valid_handler_settings(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(_RESERVED_ENV & set(value))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} come from the target and cannot be set here")
        try:
            Settings.from_env({**_PLACEHOLDER_ENV, **value})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def effective_lease_seconds(self) -> int:
        """The lease the handler will actually hold: never shorter than its timeout plus the margin."""
        floor = math.ceil(self.function_timeout_seconds) + LEASE_MARGIN_SECONDS
        return max(self.claim_lease_seconds or 0, floor)

    @property
    def effective_visibility_timeout(self) -> int:
        """The queue's visibility timeout for the run."""
        return self.visibility_timeout or self.effective_lease_seconds + 5

    @model_validator(mode="after")
    def _mapping_is_valid(self) -> Self:
        try:
            MappingSettings(
                batch_size=self.batch_size,
                batching_window_seconds=self.window_seconds,
                function_timeout_seconds=self.function_timeout_seconds,
            )
        except ValueError as exc:
            raise ValueError(f"event source mapping: {exc}") from None
        if self.effective_visibility_timeout <= self.function_timeout_seconds:
            raise ValueError(
                "visibility_timeout must exceed function_timeout_seconds, or a batch comes back while it runs"
            )
        return self


class Redelivery(_Strict):
    """Notifications delivered more than once (idempotency)."""

    concurrent_copies: Annotated[int, Field(ge=0, le=10)] = 0
    """Extra copies of every object's notification, queued with the originals before processing starts."""
    after_drain: bool = False
    """Once everything is delivered, send every notification the handler saw once more."""


class Expectations(_Strict):
    """Scenario-specific checks on top of the invariants every scenario checks."""

    bundles_min: Annotated[int, Field(ge=0)] | None = None
    bundles_max: Annotated[int, Field(ge=0)] | None = None
    compression_ratio_min: Annotated[float, Field(gt=0)] | None = None
    peak_rss_growth_mib_max: Annotated[float, Field(gt=0)] | None = None
    """Local target: the runner process's peak RSS during the scenario, above its RSS at the start."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Handler metric totals (EMF, local target) that must come out exactly, e.g. ``ObjectsMissing``."""
    metrics_at_least: dict[str, float] = Field(default_factory=dict)
    """Handler metric totals that must reach a floor: proof a path was taken (``MessagesDeferred``)."""
    archive_only_allowed: bool = False
    """Bundles may stay in Archive alone (an owner whose lease ran out mid-upload); never duplicates."""


class ScenarioConfig(_Strict):
    """One end-to-end scenario."""

    name: str
    description: str = Field(min_length=1)
    seed: int = 1
    upload: Upload
    notification_path: NotificationPath = "direct"
    """How Landing's events reach the queue: straight, through an SNS topic, or through EventBridge."""
    poison: list[PoisonKind] = Field(default_factory=list)
    processing: Processing = Field(default_factory=Processing)
    redelivery: Redelivery = Field(default_factory=Redelivery)
    faults: list[FaultRule] = Field(default_factory=list)
    kills: list[KillRule] = Field(default_factory=list)
    expect: Expectations = Field(default_factory=Expectations)
    drain_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """Give up waiting once nothing has moved (files delivered, queue depths) for this long: a slow
    machine makes a run longer, never a verdict of loss."""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower-case letters, digits and '-', at most 41 characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        processing = self.processing
        if self.kills and processing.effective_visibility_timeout <= processing.effective_lease_seconds:
            raise ValueError(
                f"processing.visibility_timeout must exceed the effective claim lease "
                f"({processing.effective_lease_seconds} s: the handler keeps leases of at least the function "
                "timeout + 30 s) when invocations are killed, or the redelivered batch finds its claims still held"
            )
        if any(kill.point == "during_fetch" for kill in self.kills) and processing.pollers > 1:
            raise ValueError(
                "kills at 'during_fetch' need processing.pollers = 1: fetch threads cannot be told apart, "
                "so such a kill ends every invocation running at that moment"
            )
        if self.redelivery.concurrent_copies and processing.start != "after_uploads":
            raise ValueError("redelivery.concurrent_copies needs processing.start = 'after_uploads'")
        if "good_and_bad_records" in self.poison and not any(
            group.keys == "regular" and group.versions == 1 and not group.delete_after_upload
            for group in self.upload.files
        ):
            raise ValueError("poison 'good_and_bad_records' needs a group of plain regular files to point at")
        low, high = self.expect.bundles_min, self.expect.bundles_max
        if low is not None and high is not None and low > high:
            raise ValueError("expect.bundles_min must be <= expect.bundles_max")
        return self

    @property
    def local_only(self) -> list[str]:
        """What only the local target can do (the handler in this process), named for the refusal.

        Checks that merely cannot be read on a deployment (handler metrics, this process's memory)
        are skipped there with a note instead.
        """
        needs = []
        if self.notification_path != "direct":  # a deployment's routing is Terraform's, not the scenario's
            needs.append(f"notification_path {self.notification_path!r}")
        if self.faults:
            needs.append("faults")
        if self.kills:
            needs.append("kills")
        if self.processing.handler_env:
            needs.append("processing.handler_env")
        return needs

    @property
    def dead_letters_expected(self) -> int:
        """How many poison messages must end in the dead-letter queue."""
        return sum(kind in DEAD_LETTER_KINDS for kind in self.poison)


class ConfigFileError(Exception):
    """A scenario file that cannot be used; the message names the file and every bad field."""


def load_config(path: Path) -> ScenarioConfig:
    """Read and validate one scenario file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    try:
        return ScenarioConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: " + describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """pydantic's report as one line per problem, each naming the field by its path in the file."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        shown = (
            f" (got {value!r})"
            if error["type"] not in ("missing", "extra_forbidden") and not isinstance(value, dict | list)
            else ""
        )
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{where}: {message}{shown}")
    return "; ".join(problems)
