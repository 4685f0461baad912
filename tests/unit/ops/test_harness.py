"""Sandbox harness helpers: summing the handler's EMF output, re-announcing an uploaded object."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from data_aggregator.events import parse_message
from data_aggregator.sandbox.harness import eventbridge_event_body, metric_totals, s3_event_body, sns_envelope
from data_aggregator.sandbox.uploader import UploadedFile


def emf(**values: float | list[float]) -> str:
    metrics = [{"Name": name, "Unit": "Count"} for name in values]
    directive = {"Namespace": "DataAggregator", "Dimensions": [["service"]], "Metrics": metrics}
    return json.dumps({"_aws": {"Timestamp": 0, "CloudWatchMetrics": [directive]}, "service": "x", **values})


def test_metric_totals_sum_every_emf_line_and_skip_the_rest() -> None:
    lines = [
        emf(FilesBundled=3, ObjectsMissing=1),
        '{"level": "INFO", "message": "bundle published"}',
        "not json at all",
        '{"_aws": "broken"}',
        emf(FilesBundled=[2, 5]),
    ]
    assert metric_totals(lines) == {"FilesBundled": 10.0, "ObjectsMissing": 1.0}


def test_a_re_announcement_names_the_object_as_s3_does() -> None:
    upload = UploadedFile(key="a b/ü+%.json", size=7, sha256="0" * 64, etag="abc", version_id="v1", uploaded_at=0.0)
    when = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    shaped = parse_message(s3_event_body(upload, "landing", "eu-west-1", when)).objects[0]
    assert (shaped.key, shaped.etag, shaped.version_id) == ("a b/ü+%.json", "abc", "v1")
    unversioned = UploadedFile(key="k", size=1, sha256="0" * 64, etag="e", version_id=None, uploaded_at=0.0)
    assert "versionId" not in s3_event_body(unversioned, "landing", "eu-west-1", when)


def test_re_announcements_on_the_other_paths_name_the_same_object_as_their_originals() -> None:
    """The SNS path wraps the S3 event unchanged; the EventBridge path carries the key as stored."""
    upload = UploadedFile(key="a b/ü+%2B.json", size=7, sha256="0" * 64, etag="abc", version_id="v1", uploaded_at=0.0)
    when = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    direct = s3_event_body(upload, "landing", "eu-west-1", when)
    envelope = sns_envelope(direct, "arn:aws:sns:eu-west-1:123456789012:landing-events", "eu-west-1", when)
    assert json.loads(envelope)["Message"] == direct
    (via_sns,) = parse_message(envelope).objects
    assert via_sns == parse_message(direct).objects[0]
    body = eventbridge_event_body(upload, "landing", "eu-west-1", when)
    assert json.loads(body)["detail"]["object"]["key"] == upload.key  # not encoded
    (via_eventbridge,) = parse_message(body).objects
    assert (via_eventbridge.key, via_eventbridge.version_id, via_eventbridge.etag) == (upload.key, "v1", "abc")
    assert via_eventbridge.event_time == "2026-11-22T10:00:00Z"
