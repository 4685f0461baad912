"""Lambda entry point: a thin adapter between the SQS event source mapping and ``Aggregator``.

It wires Powertools (Logger, Tracer, Metrics, BatchProcessor), reads settings once per invocation,
turns the batch report into metrics, and lets BatchProcessor build the partial-batch response from
the per-message verdicts. All decisions live in ``service``; this file only translates.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import os
import uuid
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from data_aggregator import telemetry
from data_aggregator.clients import (
    DEFERRALS_ATTRIBUTE,
    FIRST_SENT_ATTRIBUTE,
    AwsClients,
    BundlePublisher,
    ClaimStore,
    LandingReader,
    MessageRequeue,
    make_clients,
)
from data_aggregator.config import Settings
from data_aggregator.core import Deadline, TimeoutGuard, bound_by
from data_aggregator.models import InboundMessage, MessageAttribute
from data_aggregator.service import Aggregator, BatchReport

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or "data-aggregator"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "DataAggregator"
# Margin by which a claim lease must outlive the invocation holding it.
LEASE_MARGIN_SECONDS = 30

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# Our modules log through stdlib loggers under "data_aggregator"; give them the same JSON output.
copy_config_to_registered_loggers(source_logger=logger, include={"data_aggregator"})


@functools.cache
def _clients(endpoints: tuple[str | None, ...], region: str | None, pool_size: int) -> AwsClients:
    """One set of clients per process (warm starts reuse connections), keyed by what shapes them."""
    del endpoints, region  # part of the cache key only: boto3 reads them from the environment
    return make_clients(max_pool_connections=pool_size)


def _clients_for(settings: Settings) -> AwsClients:
    return _clients(
        (os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        settings.fetch_concurrency + 8,
    )


def _prepare_during_init() -> None:
    """Build the clients in Lambda's init phase, so that the first batch does not wait for them.

    Loading the S3 and DynamoDB models and resolving their endpoints takes ~75 ms of CPU that the first
    invocation would otherwise spend before its first request (docs/performance.md, "Cold start"). Only
    inside Lambda: tests and the sandbox import this module before their emulator is up, and build their
    clients when it is. A failure here is left to the first invocation, which meets the same error and
    reports it as it always has (a bad setting as a ConfigError naming the variable).
    """
    if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
        return
    try:
        _clients_for(Settings.from_env())
    except Exception:  # the first invocation meets it again and reports it
        logger.debug("clients not prepared during init; the first invocation builds them", exc_info=True)


def build_aggregator(settings: Settings, clients: AwsClients) -> Aggregator:
    """Compose the service from settings and clients; also used by the demo and benchmarks."""
    return Aggregator(
        settings,
        opener=LandingReader(clients.s3, chunk_size=settings.fetch_chunk_bytes),
        claims=ClaimStore(
            clients.dynamodb,
            table=settings.idempotency_table_name,
            ttl_attribute=settings.dynamodb_ttl_attribute,
            ttl_days=settings.idempotency_ttl_days,
        ),
        publisher=BundlePublisher(
            clients.s3,
            multipart_threshold=settings.multipart_threshold_bytes,
            spool_memory_bytes=settings.spool_memory_bytes,
        ),
        requeue=MessageRequeue(clients.sqs),
    )


def lease_seconds(settings: Settings, remaining_seconds: float) -> int:
    """The claim lease must outlive this invocation, or a redelivery could bundle the object twice."""
    floor = math.ceil(remaining_seconds) + LEASE_MARGIN_SECONDS
    if settings.claim_lease_seconds >= floor:
        return settings.claim_lease_seconds
    logger.warning(
        "CLAIM_LEASE_SECONDS is shorter than the invocation can run; extending the lease",
        extra={"configured_lease_seconds": settings.claim_lease_seconds, "lease_seconds": floor},
    )
    return floor


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch in, ``{"batchItemFailures": [...]}`` out (SPEC §3)."""
    settings = Settings.from_env()
    clients = _clients_for(settings)

    def remaining_seconds() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    messages = [inbound_message(raw) for raw in event["Records"]]
    guard = TimeoutGuard(
        remaining_seconds=remaining_seconds,
        reserve_seconds=settings.timeout_reserve_seconds,
        bytes_per_second=settings.guard_bytes_per_second,
    )
    # Every AWS call below is bounded by what is left of the invocation (clients.bind_to_deadlines).
    deadline = Deadline(remaining_seconds, reserve_seconds=settings.timeout_reserve_seconds)
    with bound_by(deadline):
        report = build_aggregator(settings, clients).run(
            messages,
            guard=guard,
            owner=f"{context.aws_request_id}/{uuid.uuid4().hex[:8]}",
            lease_seconds=lease_seconds(settings, remaining_seconds()),
        )
    _publish_metrics(report)
    tracer.put_annotation("bundles", str(len(report.bundles)))
    tracer.put_annotation("failed_messages", str(len(report.failures)))
    response = process_partial_response(
        event=event,
        record_handler=functools.partial(_verdict, report),
        # One processor per invocation: it keeps the batch's verdicts as instance state, and a shared one
        # would mix two invocations' failures wherever they run side by side (the sandbox's pollers).
        # Failed messages are reported, never raised: an all-failed batch must still come back as
        # batchItemFailures rather than as an invocation error that retries every message again.
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
        context=context,
    )
    return dict(response)


def inbound_message(raw: Mapping[str, Any]) -> InboundMessage:
    """An SQS record as the service needs it: what to process, and what it takes to send it again.

    Attributes are read defensively: one odd record must never fail the whole batch.
    """
    record = SQSRecord(dict(raw))
    system = raw.get("attributes") or {}
    attributes: dict[str, MessageAttribute] = {}
    for name, value in (raw.get("messageAttributes") or {}).items():
        if not isinstance(value, Mapping):
            continue
        binary = value.get("binaryValue")
        try:
            decoded = base64.b64decode(binary, validate=True) if isinstance(binary, str) else None
        except (binascii.Error, ValueError):
            decoded = None
        attributes[str(name)] = MessageAttribute(
            data_type=str(value.get("dataType") or "String"),
            string_value=value.get("stringValue") if isinstance(value.get("stringValue"), str) else None,
            binary_value=decoded,
        )
    return InboundMessage(
        message_id=record.message_id,
        body=record.body,
        receive_count=_whole_number(system.get("ApproximateReceiveCount")) or 1,
        source_arn=raw.get("eventSourceARN"),
        attributes=attributes,
        deferrals=_whole_number(_attribute_value(attributes, DEFERRALS_ATTRIBUTE)) or 0,
        first_sent_ms=_whole_number(_attribute_value(attributes, FIRST_SENT_ATTRIBUTE))
        or _whole_number(system.get("SentTimestamp")),
    )


def _attribute_value(attributes: Mapping[str, MessageAttribute], name: str) -> str | None:
    value = attributes.get(name)
    return value.string_value if value is not None else None


def _whole_number(text: object) -> int | None:
    try:
        number = int(str(text))
    except ValueError:
        return None
    return number if number >= 0 else None


def _verdict(report: BatchReport, record: SQSRecord) -> None:
    """BatchProcessor's record handler: raising marks the message as a batch item failure."""
    error = report.failures.get(record.message_id)
    if error is not None:
        raise error


def _publish_metrics(report: BatchReport) -> None:
    for name, attribute in telemetry.HANDLER_COUNTERS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=getattr(report, attribute))
    metrics.add_metric(name=telemetry.BUNDLES_WRITTEN, unit=MetricUnit.Count, value=len(report.bundles))
    metrics.add_metric(name=telemetry.MESSAGES_FAILED, unit=MetricUnit.Count, value=len(report.failures))
    logger.info(
        "batch done",
        extra={
            "failed_messages": len(report.failures),
            "deferred_messages": report.messages_deferred,
            "files_bundled": report.files_bundled,
            "bundles": len(report.bundles),
            "phase_seconds": {name: round(seconds, 3) for name, seconds in report.phase_seconds.items()},
        },
    )
    metrics.add_metric(name=telemetry.INPUT_BYTES, unit=MetricUnit.Bytes, value=report.input_bytes)
    for bundle in report.bundles:
        metrics.add_metric(name=telemetry.BUNDLE_BYTES, unit=MetricUnit.Bytes, value=bundle.size)
        metrics.add_metric(name=telemetry.BUNDLE_BUILD_SECONDS, unit=MetricUnit.Seconds, value=bundle.build_seconds)
        if bundle.oldest_file_age_seconds is not None:
            metrics.add_metric(
                name=telemetry.OLDEST_FILE_AGE_SECONDS, unit=MetricUnit.Seconds, value=bundle.oldest_file_age_seconds
            )


_prepare_during_init()
