"""Object identity (SPEC §3) and manifest serialisation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from data_aggregator.models import Manifest, ManifestEntry, SourceObject


def test_discriminator_prefers_version_then_sequencer_and_etag() -> None:
    assert SourceObject("b", "k", version_id="v", sequencer="s", etag="e").discriminator == ("version", "v")
    assert SourceObject("b", "k", sequencer="s", etag="e").discriminator == ("sequencer+etag", "s/e")
    assert SourceObject("b", "k", sequencer="s").discriminator == ("sequencer", "s")
    assert SourceObject("b", "k", etag="e").discriminator == ("etag", "e")


def test_a_reused_sequencer_does_not_merge_two_writes_of_one_key() -> None:
    """Some S3 implementations give every event the same sequencer: the eTag must still tell writes apart."""
    first = SourceObject("b", "k", sequencer="0055AED6DCD90281E5", etag="aaa")
    second = SourceObject("b", "k", sequencer="0055AED6DCD90281E5", etag="bbb")
    assert first.object_id != second.object_id
    assert first.object_id == SourceObject("b", "k", sequencer="0055AED6DCD90281E5", etag="aaa").object_id


def test_identity_ignores_what_does_not_identify() -> None:
    a = SourceObject("b", "k", version_id="v", size=1, event_time="2026-01-01T00:00:00Z")
    b = SourceObject("b", "k", version_id="v", size=1, event_time="2026-01-02T00:00:00Z", etag="x")
    assert a.object_id == b.object_id


def test_identity_is_injective_over_awkward_parts() -> None:
    ids = {
        SourceObject("b", "k#v=1").object_id,
        SourceObject("b", "k", version_id="1").object_id,
        SourceObject("b", 'k","version","1').object_id,
        SourceObject("b", "k", etag="1").object_id,
        SourceObject("b", "k", sequencer="1").object_id,
        SourceObject("bk", "").object_id,
    }
    assert len(ids) == 6
    assert all(len(i) == 64 for i in ids)


def test_event_datetime() -> None:
    obj = SourceObject("b", "k", event_time="2026-11-22T21:41:57.416Z")
    assert obj.event_datetime == datetime(2026, 11, 22, 21, 41, 57, 416000, tzinfo=UTC)
    assert SourceObject("b", "k", event_time="garbage").event_datetime is None
    assert SourceObject("b", "k").event_datetime is None


def test_manifest_round_trip_keeps_unicode_readable() -> None:
    entry = ManifestEntry(
        member="ü.txt", bucket="b", key="/ü.txt", version_id=None, etag="e", size=0, sha256="0" * 64, event_time=None
    )
    data = Manifest(bundle_id="id", created_at="2026-11-22T00:00:00.000Z", files=[entry]).to_bytes()
    assert "ü".encode() in data
    loaded = json.loads(data)
    assert loaded["schema_version"] == 1
    assert list(loaded["files"][0]) == ["member", "bucket", "key", "version_id", "etag", "size", "sha256", "event_time"]
    assert Manifest.model_validate(loaded).files == [entry]
