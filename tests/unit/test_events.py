"""Parsing SQS bodies: real and emulator-shaped notifications, test events, and poison."""

from __future__ import annotations

import json

import pytest

from data_aggregator.errors import PoisonMessageError
from data_aggregator.events import decode_key, parse_message
from tests.support import notification, s3_record


def test_real_shaped_record_is_decoded() -> None:
    record = s3_record("dir/a b+c%d/ü.txt", size=7, etag='"abc"', version_id="v1", sequencer="00AB")
    parsed = parse_message(notification(record))
    (obj,) = parsed.objects
    assert obj.key == "dir/a b+c%d/ü.txt"
    assert obj.size == 7
    assert obj.etag == "abc"
    assert obj.version_id == "v1"
    assert obj.sequencer == "00AB"
    assert obj.event_time == record["eventTime"]
    assert not parsed.problems


def test_emulator_shaped_record_with_encoded_slash_and_no_sequencer() -> None:
    body = json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-11-22T21:41:57.416Z",
                    "s3": {
                        "bucket": {"name": "land"},
                        "object": {"key": "a+b%2Fc%2Bd%25e%2F%C3%BC.txt", "size": 5, "eTag": "5d41"},
                    },
                }
            ]
        }
    )
    (obj,) = parse_message(body).objects
    assert obj.key == "a b/c+d%e/ü.txt"
    assert obj.sequencer is None
    assert obj.discriminator == ("etag", "5d41")


def test_test_event_is_recognised() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "land"})
    parsed = parse_message(body)
    assert parsed.is_test_event
    assert parsed.objects == ()


def test_non_created_events_are_ignored_not_failed() -> None:
    parsed = parse_message(
        notification(
            s3_record("gone.txt", event_name="ObjectRemoved:Delete"),
            s3_record("new.txt", event_name="ObjectCreated:Copy"),
        )
    )
    assert parsed.ignored_records == 1
    assert [o.key for o in parsed.objects] == ["new.txt"]
    assert parsed.poison_error() is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("not json at all", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "JSON list"),
        ('"text"', "JSON str"),
        ('{"Message": "hi"}', "no 'Records' array (top-level keys: Message)"),
        ('{"Records": {}}', "non-empty array"),
        ('{"Records": []}', "non-empty array"),
    ],
)
def test_unusable_bodies_are_poison_with_a_clear_reason(body: str, fragment: str) -> None:
    with pytest.raises(PoisonMessageError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_message(body)
    assert caught.value.retryable is False


def test_bad_records_are_reported_while_good_ones_are_kept() -> None:
    good = s3_record("ok.txt", size=1)
    not_s3 = {**s3_record("x"), "eventSource": "aws:sqs"}
    no_key = s3_record("y")
    del no_key["s3"]["object"]["key"]
    bad_encoding = s3_record("z")
    bad_encoding["s3"]["object"]["key"] = "%FF%FE"
    parsed = parse_message(notification(good, not_s3, no_key, bad_encoding))
    assert [o.key for o in parsed.objects] == ["ok.txt"]
    assert len(parsed.problems) == 3
    error = parsed.poison_error()
    assert error is not None
    text = str(error)
    assert "record 1: eventSource 'aws:sqs'" in text
    assert "record 2: s3.object.key" in text
    assert "record 3: key '%FF%FE' is not percent-encoded UTF-8" in text


def test_null_version_is_not_an_identity() -> None:
    (obj,) = parse_message(notification(s3_record("k", version_id="null", sequencer="01"))).objects
    assert obj.version_id is None
    assert obj.discriminator == ("sequencer", "01")


@pytest.mark.parametrize(("raw", "key"), [("a+b", "a b"), ("a%2Bb", "a+b"), ("%2F%2Fx", "//x"), ("%25", "%")])
def test_decode_key(raw: str, key: str) -> None:
    assert decode_key(raw) == key


def test_decode_rejects_empty_key() -> None:
    with pytest.raises(ValueError, match="empty"):
        decode_key("")
