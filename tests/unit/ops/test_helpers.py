"""Small pure helpers behind the commands: URIs, digests, key hours, restore headers, context."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import UTC, datetime

import pytest

from data_aggregator.ops.hashing import (
    HashingReader,
    S3Location,
    b64_to_hex,
    hex_to_b64,
    is_hex_sha256,
    parse_s3_uri,
)
from data_aggregator.ops.replay import Action, hour_of_key, parse_time, restore_state
from data_aggregator.sandbox.context import LambdaContext


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/a/b c.tar.gz") == S3Location("bucket", "a/b c.tar.gz")
    assert str(S3Location("b", "k")) == "s3://b/k"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("bucket/key", "not an S3 URI"),
        ("s3:///key", "no bucket name"),
        ("s3://bucket", "no object key"),
        ("s3://bucket/", "no object key"),
    ],
)
def test_parse_s3_uri_errors_name_the_problem(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_s3_uri(uri)


def test_checksum_conversions() -> None:
    digest = hashlib.sha256(b"abc")
    b64 = base64.b64encode(digest.digest()).decode()
    assert hex_to_b64(digest.hexdigest()) == b64
    assert b64_to_hex(b64) == digest.hexdigest()
    assert b64_to_hex(b64 + "-3") is None  # multipart composite
    assert b64_to_hex("!!notbase64") is None
    assert b64_to_hex(base64.b64encode(b"short").decode()) is None
    assert is_hex_sha256(digest.hexdigest())
    assert is_hex_sha256(digest.hexdigest().upper())  # either case is a hex digest
    assert not is_hex_sha256(digest.hexdigest()[:-1] + "g")
    assert not is_hex_sha256(digest.hexdigest() + "\n")


def test_hashing_reader_counts_everything_including_the_drained_rest() -> None:
    data = bytes(range(256)) * 10_000
    reader = HashingReader(io.BytesIO(data))
    assert reader.read(10) == data[:10]
    reader.drain()
    assert reader.bytes_read == len(data)
    assert reader.hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(0)


def test_hashing_reader_read_all() -> None:
    reader = HashingReader(io.BytesIO(b"x" * 3_000_000))
    assert len(reader.read()) == 3_000_000
    assert reader.bytes_read == 3_000_000


@pytest.mark.parametrize(
    ("key", "hour"),
    [
        ("bundles/2026/11/22/14/b-1.tar.gz", datetime(2026, 11, 22, 14, tzinfo=UTC)),
        ("other/prefix/2025/01/02/00/x.tar.gz", datetime(2025, 1, 2, 0, tzinfo=UTC)),
        ("bundles/2026/13/22/14/b-1.tar.gz", None),
        ("bundles/loose.tar.gz", None),
    ],
)
def test_hour_of_key(key: str, hour: datetime | None) -> None:
    assert hour_of_key(key) == hour


def test_parse_time() -> None:
    assert parse_time("2026-11-22T14:30") == datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
    assert parse_time("2026-11-22T15:30+01:00").astimezone(UTC).hour == 14
    with pytest.raises(ValueError, match="not an ISO-8601 time: 'yesterday'"):
        parse_time("yesterday")


def test_restore_state() -> None:
    assert restore_state(None) == "none"
    assert restore_state('ongoing-request="true"') == "ongoing"
    assert restore_state('ongoing-request="false", expiry-date="Fri, 23 Dec 2026 00:00:00 GMT"') == "done"


def test_pending_actions() -> None:
    assert {a for a in Action if a.pending} == {Action.RESTORE_REQUESTED, Action.RESTORE_IN_PROGRESS}


def test_lambda_context_counts_down_with_its_clock() -> None:
    now = [100.0]
    context = LambdaContext(timeout_seconds=30, clock=lambda: now[0], function_name="fn")
    assert context.get_remaining_time_in_millis() == 30_000
    now[0] += 12.5
    assert context.get_remaining_time_in_millis() == 17_500
    assert not context.timed_out
    now[0] += 40
    assert context.get_remaining_time_in_millis() == 0
    assert context.timed_out
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert context.memory_limit_in_mb == 1024
    assert context.aws_request_id
