"""One typed, validated settings object read from the environment.

Every tunable lives here so operators find them in one place and a typo in Terraform fails the first
invocation loudly (naming the variable) instead of silently running with a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_aggregator.errors import ConfigError

MIB = 1024 * 1024
GIB = 1024 * MIB


class Settings(BaseModel):
    """Runtime configuration; field aliases are the environment variable names (SPEC §3)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    archive_bucket_name: Annotated[str, Field(alias="ARCHIVE_BUCKET_NAME", min_length=3, max_length=63)]
    distribution_bucket_name: Annotated[str, Field(alias="DISTRIBUTION_BUCKET_NAME", min_length=3, max_length=63)]
    idempotency_table_name: Annotated[str, Field(alias="IDEMPOTENCY_TABLE_NAME", min_length=3, max_length=255)]

    idempotency_ttl_days: Annotated[int, Field(alias="IDEMPOTENCY_TTL_DAYS", ge=1, le=365)] = 7
    dynamodb_ttl_attribute: Annotated[str, Field(alias="DYNAMODB_TTL_ATTRIBUTE", min_length=1)] = "ttl"
    bundle_prefix: Annotated[str, Field(alias="BUNDLE_PREFIX")] = "bundles/"

    # Limits: a batch over these splits into several bundles; a single object over max_object_bytes fails.
    max_files_per_bundle: Annotated[int, Field(alias="MAX_FILES_PER_BUNDLE", ge=1, le=100_000)] = 1000
    max_bundle_input_bytes: Annotated[int, Field(alias="MAX_BUNDLE_INPUT_BYTES", ge=1)] = 512 * MIB
    max_object_bytes: Annotated[int, Field(alias="MAX_OBJECT_BYTES", ge=0)] = 2 * GIB

    # Tuning.
    # A bundle past this spills to /tmp (page cache, not the function's resident memory). 8 MiB keeps a
    # 100 MB batch's peak near 118 MB instead of ~138 MB, for the same CPU (docs/performance.md, 7).
    spool_memory_bytes: Annotated[int, Field(alias="SPOOL_MEMORY_BYTES", ge=0)] = 8 * MIB
    fetch_concurrency: Annotated[int, Field(alias="FETCH_CONCURRENCY", ge=1, le=256)] = 32
    fetch_chunk_bytes: Annotated[int, Field(alias="FETCH_CHUNK_BYTES", ge=4096, le=MIB)] = 256 * 1024
    fetch_prefetch_chunks: Annotated[int, Field(alias="FETCH_PREFETCH_CHUNKS", ge=1, le=64)] = 2
    compression_level: Annotated[int, Field(alias="COMPRESSION_LEVEL", ge=0, le=3)] = 1
    compression_threads: Annotated[int, Field(alias="COMPRESSION_THREADS", ge=0, le=16)] = 1
    multipart_threshold_bytes: Annotated[int, Field(alias="MULTIPART_THRESHOLD_BYTES", ge=5 * MIB, le=5 * GIB)] = (
        1 * GIB
    )

    # Timeout guard and claim lease.
    timeout_reserve_seconds: Annotated[float, Field(alias="TIMEOUT_RESERVE_SECONDS", ge=0)] = 10.0
    guard_bytes_per_second: Annotated[int, Field(alias="GUARD_BYTES_PER_SECOND", ge=1)] = 20_000_000
    claim_lease_seconds: Annotated[int, Field(alias="CLAIM_LEASE_SECONDS", ge=1)] = 360

    # Deferral: a message this invocation had no time for is sent to the queue again instead of failing
    # (so a slow day never spends its receive count). Bounded in number, and in age so that no copy of
    # a message can outlive the claims that make it a duplicate (docs/design.md, "Deferral").
    max_deferrals: Annotated[int, Field(alias="MAX_DEFERRALS", ge=0, le=1000)] = 20
    deferral_max_age_seconds: Annotated[int, Field(alias="DEFERRAL_MAX_AGE_SECONDS", ge=0)] = 86_400

    @field_validator("bundle_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a relative prefix without '..' segments (for example 'bundles/')")
        if value and not value.endswith("/"):
            raise ValueError("must be empty or end with '/' (for example 'bundles/')")
        return value

    @model_validator(mode="after")
    def _buckets_differ(self) -> Self:
        if self.archive_bucket_name == self.distribution_bucket_name:
            raise ValueError(
                "ARCHIVE_BUCKET_NAME and DISTRIBUTION_BUCKET_NAME must differ: the consumer deletes from "
                "Distribution, which would delete the archive copy"
            )
        return self

    @model_validator(mode="after")
    def _deferral_within_claims(self) -> Self:
        if self.deferral_max_age_seconds >= self.idempotency_ttl_days * 86_400:
            raise ValueError(
                "DEFERRAL_MAX_AGE_SECONDS must be below IDEMPOTENCY_TTL_DAYS: a message deferred past its "
                "object's claim would be bundled again"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Validate the environment, turning pydantic's report into one message that names variables."""
        source = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(source))
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        value = error.get("input")
        shown = "" if error["type"] == "missing" or isinstance(value, dict) else f" (got {value!r})"
        problems.append(f"{name}: {error['msg']}{shown}")
    return "invalid configuration: " + "; ".join(problems)
