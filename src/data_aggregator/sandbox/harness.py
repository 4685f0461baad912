"""Running the real handler in this process next to the emulator: its environment, its output, its consumer.

Shared by ``demo`` and the end-to-end scenarios. The handler reads its settings from the environment
and prints Powertools' JSON logs and EMF metrics to stdout; both are redirected here for the duration
of a run, so the operator's terminal shows the progress line while the function's output goes to a
log file that can be searched (and summed, for metrics) afterwards.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote_plus

from data_aggregator.models import utc_timestamp
from data_aggregator.ops.consume import ConsumedBundle, Consumer
from data_aggregator.sandbox.backends import Backend
from data_aggregator.sandbox.esm import Handler
from data_aggregator.sandbox.provision import Environment
from data_aggregator.sandbox.uploader import UploadedFile

log = logging.getLogger(__name__)

SERVICE_NAME = "data-aggregator"


class _StdoutRouter(io.TextIOBase):
    """Sends the handler's stdout (Powertools logs and EMF metrics) to a file during a run.

    Powertools' Logger keeps the stream it found at import time, so the router stays valid after the
    run and then forwards to whatever ``sys.stdout`` is.
    """

    def __init__(self) -> None:
        self.target: TextIO | None = None

    def write(self, text: str, /) -> int:
        target = self.target or sys.stdout
        if target is self:
            target = sys.__stdout__ or sys.stderr
        return target.write(text)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()


_ROUTER = _StdoutRouter()


@contextmanager
def _handler_logs_to_router(service: str) -> Iterator[None]:
    """Point the function's log handlers at the router for the run, whenever they were created.

    A handler module imported earlier (by another caller in the same process) holds the stream it
    found then; without this, its logs would bypass the log file and scribble over the progress line.
    """
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for name in (service, "data_aggregator"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream not in (_ROUTER, sys.stderr):
                swapped.append((handler, handler.setStream(_ROUTER)))
    try:
        yield
    finally:
        for handler, previous in swapped:
            handler.setStream(previous)


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block and restore the previous values afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def handler_output_to(log_file: TextIO) -> Iterator[None]:
    """Route the in-process handler's stdout and its loggers into ``log_file`` for the block."""
    with ExitStack() as stack:
        stack.callback(setattr, _ROUTER, "target", None)
        _ROUTER.target = log_file
        stack.enter_context(redirect_stdout(_ROUTER))
        yield


@contextmanager
def handler_loggers_routed() -> Iterator[None]:
    """Enter once the handler module is imported: its log handlers then exist and can be redirected."""
    with _handler_logs_to_router(os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE_NAME)):
        yield


def handler_environment(
    emulator: Backend, environment: Environment, *, claim_lease_seconds: int, function_timeout_seconds: float
) -> dict[str, str]:
    """The function's environment as Terraform would set it, pointed at the emulator."""
    return {
        **emulator.environment(),
        **environment.handler_environment(),
        "CLAIM_LEASE_SECONDS": str(claim_lease_seconds),
        # The guard's reserve must fit the emulated timeout, or a short timeout would start no work.
        "TIMEOUT_RESERVE_SECONDS": f"{max(0.5, min(10.0, function_timeout_seconds / 4)):g}",
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": "DataAggregator",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }


def load_handler() -> Handler:
    """Import the real Lambda handler (after the environment points at the emulator)."""
    module = importlib.import_module("data_aggregator.app")  # only now: it reads the environment
    handler: Handler = module.handler
    return handler


def s3_event_body(upload: UploadedFile, landing: str, region: str, when: datetime) -> str:
    """Another S3 notification for an uploaded object, shaped like the original one.

    The object's identity (SPEC §3) must match the original notification's for it to count as the same
    object: S3's events from a versioned bucket name the version, and so do both of our backends'
    (LocalStack's natively, moto's through ``server.notifications_like_s3``). The sequencer is S3's
    own and cannot be repeated here; with the version present it is not part of the identity.
    """
    obj: dict[str, Any] = {"key": quote_plus(upload.key, safe="/"), "size": upload.size, "eTag": upload.etag}
    if upload.version_id:
        obj["versionId"] = upload.version_id
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": region,
                    "eventTime": utc_timestamp(when),
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "sandbox-duplicate",
                        "bucket": {"name": landing, "arn": f"arn:aws:s3:::{landing}"},
                        "object": obj,
                    },
                }
            ]
        }
    )


def sns_envelope(message: str, topic_arn: str, region: str, when: datetime) -> str:
    """``message`` as an SQS subscription without raw message delivery receives it from SNS.

    The signature fields are placeholders: the handler does not verify them (SQS, not SNS, authenticates
    the sender; the queue policy admits only the topic).
    """
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": utc_timestamp(when),
            "SignatureVersion": "1",
            "Signature": "",
            "SigningCertURL": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-sandbox.pem",
            "UnsubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:sandbox",
        }
    )


def eventbridge_event_body(upload: UploadedFile, landing: str, region: str, when: datetime) -> str:
    """Another S3 "Object Created" event as EventBridge delivers it to SQS: the key as stored, not encoded.

    S3 puts the version-id into these events (the emulator too), so the identity matches the original's.
    """
    obj: dict[str, Any] = {"key": upload.key, "size": upload.size, "etag": upload.etag}
    if upload.version_id:
        obj["version-id"] = upload.version_id
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [f"arn:aws:s3:::{landing}"],
            "detail": {
                "version": "0",
                "bucket": {"name": landing},
                "object": obj,
                "request-id": "SANDBOXDUPLICATE",
                "requester": "123456789012",
                "reason": "PutObject",
            },
        }
    )


def metric_totals(lines: Iterable[str]) -> dict[str, float]:
    """Sum every EMF metric the handler printed (one JSON document per line), by metric name."""
    totals: dict[str, float] = {}
    for line in lines:
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            blob = json.loads(line)
            directives = blob["_aws"]["CloudWatchMetrics"]
        except (ValueError, KeyError, TypeError):
            continue
        for directive in directives:
            for metric in directive.get("Metrics", []):
                name = metric["Name"]
                raw = blob.get(name, 0)
                values = raw if isinstance(raw, list) else [raw]
                totals[name] = totals.get(name, 0.0) + sum(float(v) for v in values)
    return totals


class ConsumerLoop:
    """The reference consumer polling Distribution on a thread, keeping what it consumed and rejected."""

    def __init__(self, consumer: Consumer, *, interval_seconds: float) -> None:
        self.consumer = consumer
        self.interval_seconds = interval_seconds
        self.consumed: list[ConsumedBundle] = []
        self.rejected: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        consumer.on_consumed = self._on_consumed

    def _on_consumed(self, bundle: ConsumedBundle) -> None:
        with self.lock:
            self.consumed.append(bundle)

    def snapshot(self) -> list[ConsumedBundle]:
        """The bundles consumed so far."""
        with self.lock:
            return list(self.consumed)

    def poll(self) -> None:
        """One pass over the mailbox, recording rejections."""
        result = self.consumer.poll_once()
        with self.lock:
            self.rejected.extend(f"{item.key}: {'; '.join(item.problems)}" for item in result.rejected)
            self.errors.extend(result.errors)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a consumer bug must show up as undelivered files, not a silent stop
                log.exception("consumer poll failed")
                self._stop.wait(1.0)
                continue
            self._stop.wait(self.interval_seconds)

    def start(self) -> None:
        """Poll in the background until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="consumer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, then make one last pass so nothing published before the stop is left behind."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.poll()
