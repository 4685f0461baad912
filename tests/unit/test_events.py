"""Parsing SQS bodies: real and emulator-shaped notifications, SNS envelopes, EventBridge events, and poison."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_aggregator.errors import PoisonMessageError
from data_aggregator.events import decode_key, parse_message
from tests.support import notification, s3_record

FIXTURES = Path(__file__).parent / "fixtures" / "events"


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
        ('{"Message": "hi"}', "unknown shape (top-level keys: Message)"),
        ('{"Type": "Notification", "Message": 7}', "SNS notification without a 'Message' string"),
        ('{"detail-type": "Object Created", "source": "aws.s3"}', "EventBridge event without a 'detail' object"),
        ('{"detail-type": "Object Created", "detail": {}}', "EventBridge event from source None"),
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


# ---------------------------------------------------------------- shapes, one fixture file each


def _fixture_ids() -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob("*.json"))


def _load_fixture(name: str) -> tuple[str, dict[str, Any]]:
    document = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    body = document["body_text"] if "body_text" in document else json.dumps(document["body"])
    return body, document["expect"]


def test_there_is_a_fixture_for_every_shape() -> None:
    names = _fixture_ids()
    for prefix in ("s3-direct-", "sns-s3-", "sns-eventbridge-", "eventbridge-", "poison-sns-", "poison-eventbridge-"):
        assert any(name.startswith(prefix) for name in names), prefix


@pytest.mark.parametrize("name", _fixture_ids())
def test_fixture_body_parses_as_described(name: str) -> None:
    body, expect = _load_fixture(name)
    if "poison" in expect:
        with pytest.raises(PoisonMessageError) as caught:
            parse_message(body)
        assert expect["poison"] in str(caught.value)
        assert caught.value.retryable is False
        return
    parsed = parse_message(body)
    assert [dataclasses.asdict(obj) for obj in parsed.objects] == expect.get("objects", [])
    assert parsed.is_test_event is expect.get("test_event", False)
    assert parsed.ignored_records == expect.get("ignored_records", 0)
    fragments = expect.get("problems", [])
    error = parsed.poison_error()
    if fragments:
        assert error is not None
        assert error.retryable is False
        for fragment in fragments:
            assert fragment in str(error)
    else:
        assert error is None


def test_an_eventbridge_key_is_taken_verbatim_where_a_notification_key_is_decoded() -> None:
    """The same characters mean different keys in the two shapes: only the S3 notification is form-encoded."""
    key = "a+b%2Bc 100%"
    eventbridge = _eventbridge_body(key)
    (obj,) = parse_message(eventbridge).objects
    assert obj.key == "a+b%2Bc 100%"
    (obj,) = parse_message(notification(s3_record(key))).objects
    assert obj.key == key
    raw = s3_record("x")
    raw["s3"]["object"]["key"] = key
    (obj,) = parse_message(notification(raw)).objects
    assert obj.key == "a b+c 100%"


def test_one_write_has_one_identity_whatever_the_path() -> None:
    """S3 puts the versionId into both shapes; the claim must not depend on how the event travelled."""
    key = "dir/ü +%.bin"
    record = s3_record(key, size=5, etag='"e1"', version_id="v7", sequencer="00AA")
    direct = parse_message(notification(record)).objects
    via_sns = parse_message(_sns_body(notification(record))).objects
    via_eventbridge = parse_message(_eventbridge_body(key, version_id="v7", sequencer="00BB", etag="e1")).objects
    assert len(direct) == len(via_sns) == len(via_eventbridge) == 1
    assert direct[0].object_id == via_sns[0].object_id == via_eventbridge[0].object_id


def test_an_sns_wrapped_problem_names_the_topic() -> None:
    bad = s3_record("k")
    bad["s3"]["object"]["key"] = "%FF"
    parsed = parse_message(_sns_body(notification(bad), topic="arn:aws:sns:eu-west-1:1:fanout"))
    error = parsed.poison_error()
    assert error is not None
    assert "via SNS topic arn:aws:sns:eu-west-1:1:fanout" in str(error)
    assert "record 0: key '%FF' is not percent-encoded UTF-8" in str(error)


@pytest.mark.parametrize(
    "detail_type",
    ["Object Deleted", "Object Restore Initiated", "Object Restore Expired", "Object Tags Added", "Object ACL Updated"],
)
def test_other_s3_eventbridge_events_are_acknowledged_as_ignored(detail_type: str) -> None:
    event = json.loads(_eventbridge_body("k"))
    event["detail-type"] = detail_type
    del event["detail"]["object"]["size"]  # not every kind carries it; nothing about them is validated
    parsed = parse_message(json.dumps(event))
    assert parsed.objects == ()
    assert parsed.ignored_records == 1
    assert parsed.poison_error() is None


def test_an_eventbridge_time_given_as_epoch_seconds_becomes_iso_8601() -> None:
    """Emulators have sent ``time`` as a number; the manifest's event_time stays an ISO-8601 string."""
    event = json.loads(_eventbridge_body("k"))
    event["time"] = 1_795_000_000.25
    (obj,) = parse_message(json.dumps(event)).objects
    assert obj.event_time == "2026-11-18T11:06:40.250Z"
    assert obj.event_datetime is not None


@pytest.mark.parametrize("version_id", [None, "null", ""])
def test_an_eventbridge_event_without_a_real_version_falls_back_to_the_sequencer_and_etag(
    version_id: str | None,
) -> None:
    (obj,) = parse_message(_eventbridge_body("k", version_id=version_id, sequencer="0A")).objects
    assert obj.version_id is None
    assert obj.discriminator == ("sequencer+etag", f"0A/{obj.etag}")


# ---------------------------------------------------------------- properties

# Valid S3 keys: 1..1024 bytes of UTF-8 (no surrogates), weighted towards characters encodings disagree on.
_awkward_part = st.sampled_from(["+", "%", "%2B", "%25", "%2F", " ", "/", "//", "ü", "\U0001f600", "?", "#", "\t"])
_part = st.one_of(_awkward_part, st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20))
s3_keys = st.lists(_part, min_size=1, max_size=10).map("".join).filter(lambda k: len(k.encode("utf-8")) <= 1024)


@given(s3_keys)
@settings(max_examples=300)
def test_any_key_survives_every_path(key: str) -> None:
    encoded_slash_kept = notification(s3_record(key))
    emulator_encoded = notification(s3_record(key, encode_slash=True))
    for body in (encoded_slash_kept, emulator_encoded, _sns_body(encoded_slash_kept), _eventbridge_body(key)):
        (obj,) = parse_message(body).objects
        assert obj.key == key


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_vocabulary = st.sampled_from(
    [
        *("Records", "Type", "Message", "TopicArn", "Event", "detail-type", "detail", "source", "time", "bucket"),
        *("object", "key", "name", "s3", "eventSource", "eventName", "version-id", "Notification", "aws.s3"),
        *("aws:s3", "Object Created", "ObjectCreated:Put", "s3:TestEvent"),
    ]
)
_json_values = st.recursive(
    _json_scalars | _vocabulary,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_vocabulary | st.text(max_size=6), inner, max_size=5),
    max_leaves=25,
)


@given(_json_values, st.booleans())
@settings(max_examples=400)
def test_any_json_body_is_parsed_or_poison_never_a_crash(value: object, wrap_in_sns: bool) -> None:
    body = json.dumps(value)
    if wrap_in_sns:
        body = _sns_body(body)
    try:
        parsed = parse_message(body)
    except PoisonMessageError as exc:
        poison: PoisonMessageError | None = exc
    else:
        poison = None
    if poison is not None:
        assert poison.retryable is False
        return
    for obj in parsed.objects:
        assert obj.bucket
        assert obj.key


# ---------------------------------------------------------------- builders


def _sns_body(message: str, *, topic: str = "arn:aws:sns:us-east-1:123456789012:landing") -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "9b3f3f58-5f8a-5c2e-b3b6-0c1e9c6b6d1a",
            "TopicArn": topic,
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2026-11-27T10:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def _eventbridge_body(
    key: str, *, version_id: str | None = "v1", sequencer: str | None = "00617F", etag: str = "d41d8cd9"
) -> str:
    obj: dict[str, Any] = {"key": key, "size": 5, "etag": etag}
    if version_id is not None:
        obj["version-id"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return json.dumps(
        {
            "version": "0",
            "id": "0d5e2c1b-4b9a-4f0e-9c3d-7a6b5c4d3e2f",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-27T10:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:s3:::landing-bucket"],
            "detail": {
                "version": "0",
                "bucket": {"name": "landing-bucket"},
                "object": obj,
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "reason": "PutObject",
            },
        }
    )
