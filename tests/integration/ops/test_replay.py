"""``replay``: copies, restores, dry runs and idempotency against moto.

moto completes a Glacier restore the moment it is requested; a small botocore hook makes HeadObject
report ``ongoing-request="true"`` for a chosen number of looks after the request, which is what S3
does for the hours a Deep Archive restore takes.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from data_aggregator.cli import main
from data_aggregator.ops.replay import Action, Replayer
from data_aggregator.sandbox.emulator import Clients, Emulator
from tests.bundle_factory import build_bundle, bundle_key, put_bundle, sample_files, sha256_hex
from tests.integration.ops.conftest import Buckets, unique


class RestoreSimulator:
    """Makes restores of ``bucket`` look in progress for ``pending_looks`` HeadObject calls."""

    def __init__(self, clients: Clients, bucket: str, pending_looks: int) -> None:
        self.bucket = bucket
        self.pending_looks = pending_looks
        self.requested: dict[str, dict[str, Any]] = {}
        self.looks: Counter[str] = Counter()
        events = clients.s3.meta.events
        events.register("provide-client-params.s3.HeadObject", self._remember)
        events.register("provide-client-params.s3.RestoreObject", self._record_restore)
        events.register("after-call.s3.HeadObject", self._in_progress)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["simulated"] = (params["Bucket"], params["Key"])

    def _record_restore(self, params: dict[str, Any], **_: Any) -> None:
        self.requested[params["Key"]] = params["RestoreRequest"]

    def _in_progress(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        bucket, key = context.get("simulated", ("", ""))
        if bucket != self.bucket or key not in self.requested:
            return
        self.looks[key] += 1
        if self.looks[key] <= self.pending_looks:
            parsed["Restore"] = 'ongoing-request="true"'


def archived(clients: Clients, buckets: Buckets, bundle_id: str, storage_class: str | None = None) -> tuple[str, bytes]:
    data = build_bundle(sample_files(), bundle_id)
    key = bundle_key(bundle_id)
    put_bundle(clients.s3, buckets.archive, key, data, storage_class=storage_class)
    return key, data


def distribution_versions(clients: Clients, buckets: Buckets, key: str) -> int:
    response = clients.s3.list_object_versions(Bucket=buckets.distribution, Prefix=key)
    return len(response.get("Versions", []))


def test_standard_bundles_are_copied_verified_and_not_duplicated(clients: Clients, buckets: Buckets) -> None:
    key1, data1 = archived(clients, buckets, "b-1")
    key2, _ = archived(clients, buckets, "b-2")
    replayer = Replayer(clients.s3, buckets.archive, buckets.distribution)

    first = replayer.run([key1, key2])
    assert [o.action for o in first.outcomes.values()] == [Action.COPIED, Action.COPIED]
    assert first.exit_code() == 0
    copy = clients.s3.get_object(Bucket=buckets.distribution, Key=key1)
    assert copy["Body"].read() == data1
    assert copy["Metadata"] == {"content-sha256": sha256_hex(data1)}
    assert copy["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in copy

    second = replayer.run([key1, key2])
    assert [o.action for o in second.outcomes.values()] == [Action.ALREADY_PRESENT, Action.ALREADY_PRESENT]
    assert distribution_versions(clients, buckets, key1) == 1


def test_deep_archive_restore_then_copy_over_three_runs(private_clients: Clients, buckets: Buckets) -> None:
    key, data = archived(private_clients, buckets, "b-deep", "DEEP_ARCHIVE")
    simulator = RestoreSimulator(private_clients, buckets.archive, pending_looks=1)
    replayer = Replayer(private_clients.s3, buckets.archive, buckets.distribution, tier="Standard", restore_days=3)

    first = replayer.run([key])
    assert first.outcomes[key].action is Action.RESTORE_REQUESTED
    assert first.outcomes[key].storage_class == "DEEP_ARCHIVE"
    assert first.exit_code() == 3
    assert simulator.requested[key] == {"Days": 3, "GlacierJobParameters": {"Tier": "Standard"}}

    second = replayer.run([key])
    assert second.outcomes[key].action is Action.RESTORE_IN_PROGRESS
    assert second.exit_code() == 3

    third = replayer.run([key])
    assert third.outcomes[key].action is Action.COPIED
    assert third.exit_code() == 0
    assert private_clients.s3.get_object(Bucket=buckets.distribution, Key=key)["Body"].read() == data
    assert list(simulator.requested) == [key]  # requested once, never again


def test_wait_polls_until_the_restore_finishes(private_clients: Clients, buckets: Buckets) -> None:
    key, _ = archived(private_clients, buckets, "b-wait", "GLACIER")
    RestoreSimulator(private_clients, buckets.archive, pending_looks=2)
    naps: list[float] = []
    report = Replayer(private_clients.s3, buckets.archive, buckets.distribution).run(
        [key], wait=True, poll_interval=60, sleep=naps.append
    )
    assert report.outcomes[key].action is Action.COPIED
    assert report.passes == 4  # request, in progress, in progress, copy
    assert naps == [60, 60, 60]


def test_wait_timeout_leaves_restores_pending(private_clients: Clients, buckets: Buckets) -> None:
    key, _ = archived(private_clients, buckets, "b-slow", "DEEP_ARCHIVE")
    RestoreSimulator(private_clients, buckets.archive, pending_looks=100)
    now = [0.0]

    def nap(seconds: float) -> None:
        now[0] += seconds

    report = Replayer(private_clients.s3, buckets.archive, buckets.distribution).run(
        [key], wait=True, poll_interval=60, wait_timeout=200, sleep=nap, clock=lambda: now[0]
    )
    assert report.outcomes[key].action is Action.RESTORE_IN_PROGRESS
    assert report.exit_code() == 3
    assert now[0] <= 200


def test_dry_run_changes_nothing(clients: Clients, buckets: Buckets) -> None:
    deep, _ = archived(clients, buckets, "b-dry-deep", "DEEP_ARCHIVE")
    standard, _ = archived(clients, buckets, "b-dry-std")
    report = Replayer(clients.s3, buckets.archive, buckets.distribution, dry_run=True).run([deep, standard], wait=True)
    assert report.outcomes[deep].action is Action.WOULD_RESTORE
    assert report.outcomes[standard].action is Action.WOULD_COPY
    assert report.exit_code() == 0
    assert "dry run: nothing was changed" in report.render()
    assert "Restore" not in clients.s3.head_object(Bucket=buckets.archive, Key=deep)
    assert clients.s3.list_objects_v2(Bucket=buckets.distribution).get("KeyCount") == 0


def test_expedited_is_refused_for_deep_archive(clients: Clients, buckets: Buckets) -> None:
    key, _ = archived(clients, buckets, "b-exp", "DEEP_ARCHIVE")
    outcome = Replayer(clients.s3, buckets.archive, buckets.distribution, tier="Expedited").replay_one(key)
    assert outcome.action is Action.FAILED
    assert "Expedited is not offered for DEEP_ARCHIVE" in outcome.detail


def test_copy_that_does_not_match_its_digest_is_removed(clients: Clients, buckets: Buckets) -> None:
    data = build_bundle(sample_files(), "b-liar")
    key = bundle_key("b-liar")
    put_bundle(clients.s3, buckets.archive, key, data, sha256="9" * 64)
    outcome = Replayer(clients.s3, buckets.archive, buckets.distribution).replay_one(key)
    assert outcome.action is Action.FAILED
    assert outcome.detail.startswith(f"copy verification failed: bytes {sha256_hex(data)}")
    assert clients.s3.list_objects_v2(Bucket=buckets.distribution).get("KeyCount") == 0


def test_missing_and_unverifiable_archive_objects_fail_clearly(clients: Clients, buckets: Buckets) -> None:
    clients.s3.put_object(Bucket=buckets.archive, Key="bundles/2026/11/22/14/plain.tar.gz", Body=b"x")
    replayer = Replayer(clients.s3, buckets.archive, buckets.distribution)
    assert replayer.replay_one("bundles/absent.tar.gz").detail == f"not in the archive bucket {buckets.archive}"
    assert replayer.replay_one("bundles/2026/11/22/14/plain.tar.gz").detail == (
        "archive copy has no valid content-sha256"
    )


def test_multipart_copy_above_the_single_copy_limit(clients: Clients, buckets: Buckets) -> None:
    data = os.urandom(11 * 1024 * 1024)
    key = bundle_key("b-big")
    put_bundle(clients.s3, buckets.archive, key, data)
    replayer = Replayer(
        clients.s3,
        buckets.archive,
        buckets.distribution,
        single_copy_limit=5 * 1024 * 1024,
        part_bytes=5 * 1024 * 1024,
    )
    outcome = replayer.replay_one(key)
    assert outcome.action is Action.COPIED, outcome.detail
    head = clients.s3.head_object(Bucket=buckets.distribution, Key=key)
    assert head["Metadata"] == {"content-sha256": sha256_hex(data)}
    assert head["ContentType"] == "application/gzip"


def test_selection_by_keys_prefix_and_hour_range(clients: Clients, buckets: Buckets) -> None:
    keys = [
        "bundles/2026/11/22/12/a.tar.gz",
        "bundles/2026/11/22/13/b.tar.gz",
        "bundles/2026/11/22/14/c.tar.gz",
        "bundles/2026/11/23/00/d.tar.gz",
        "bundles/2026/11/22/13/not-a-bundle.txt",
    ]
    for key in keys:
        clients.s3.put_object(Bucket=buckets.archive, Key=key, Body=b"x")
    replayer = Replayer(clients.s3, buckets.archive, buckets.distribution)
    assert replayer.select(prefix="bundles/2026/11/22/") == keys[:3]
    assert (
        replayer.select(since=datetime(2026, 11, 22, 13, 30, tzinfo=UTC), until=datetime(2026, 11, 22, 15, tzinfo=UTC))
        == keys[1:3]
    )
    assert replayer.select(since=datetime(2026, 11, 22, 14, tzinfo=UTC)) == keys[2:4]
    assert replayer.select(until=datetime(2026, 11, 22, 13, tzinfo=UTC)) == keys[:1]
    assert replayer.select(keys=[keys[3], keys[3]]) == [keys[3]]
    with pytest.raises(ValueError, match="cannot be combined"):
        replayer.select(keys=[keys[3]], prefix="bundles/2026/11/22/12/")
    # Filters intersect: under the prefix AND in the time range (not everything under either).
    since = datetime(2026, 11, 22, 13, tzinfo=UTC)
    assert replayer.select(prefix="bundles/2026/11/22/", since=since) == keys[1:3]
    assert replayer.select(prefix="bundles/2026/11/22/13/", since=since) == keys[1:2]
    assert replayer.select(prefix="bundles/2026/11/23/", until=since) == []
    with pytest.raises(ValueError, match="--since must be earlier than --until"):
        replayer.select(since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC))


def test_replayer_argument_errors(clients: Clients) -> None:
    with pytest.raises(ValueError, match="restore tier must be one of"):
        Replayer(clients.s3, "a-bucket", "d-bucket", tier="Fast")
    with pytest.raises(ValueError, match="must differ"):
        Replayer(clients.s3, "same", "same")


def test_cli_replay(aws_env: Emulator, clients: Clients, buckets: Buckets, capsys: pytest.CaptureFixture[str]) -> None:
    key, _ = archived(clients, buckets, "b-cli")
    deep, _ = archived(clients, buckets, "b-cli-deep", "DEEP_ARCHIVE")
    common = ["replay", "--archive-bucket", buckets.archive, "--distribution-bucket", buckets.distribution]

    assert main([*common, "--prefix", "bundles/", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "would-copy" in out.out
    assert "would-restore" in out.out
    assert "2 bundle(s) selected" in out.err

    assert main([*common, "--key", key, "--key", deep]) == 3
    assert "restore-requested" in capsys.readouterr().out
    assert main([*common, "--key", key, "--key", deep]) == 0  # moto finished the restore at once
    out = capsys.readouterr()
    assert "already-present" in out.out
    assert "copied" in out.out

    assert main([*common, "--prefix", "bundles/1999/"]) == 1
    assert "no bundle in" in capsys.readouterr().err

    assert main(common) == 2
    assert "select bundles with --key, --prefix, or --since/--until" in capsys.readouterr().err
    assert main([*common, "--since", "last week"]) == 2
    assert "not an ISO-8601 time" in capsys.readouterr().err


def test_bad_copy_is_removed_from_an_unversioned_distribution_bucket(clients: Clients) -> None:
    archive, distribution = unique("archive"), unique("plain-distribution")
    clients.s3.create_bucket(Bucket=archive)
    clients.s3.create_bucket(Bucket=distribution)  # versioning never enabled
    data = build_bundle(sample_files(), "b-liar-2")
    key = bundle_key("b-liar-2")
    put_bundle(clients.s3, archive, key, data, sha256="9" * 64)
    outcome = Replayer(clients.s3, archive, distribution).replay_one(key)
    assert outcome.action is Action.FAILED
    assert clients.s3.list_objects_v2(Bucket=distribution).get("KeyCount") == 0


def test_cli_replay_missing_key_and_mixed_selectors_are_errors(
    aws_env: Emulator, clients: Clients, buckets: Buckets, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = archived(clients, buckets, "b-present")
    common = ["replay", "--archive-bucket", buckets.archive, "--distribution-bucket", buckets.distribution]
    assert main([*common, "--key", key, "--key", "bundles/2026/11/22/14/typo.tar.gz"]) == 2
    captured = capsys.readouterr()
    assert "not in the archive bucket" in captured.err
    assert "typo.tar.gz" in captured.err
    assert "STANDARD" not in captured.out
    assert clients.s3.list_objects_v2(Bucket=buckets.distribution).get("KeyCount") == 0  # nothing was done
    assert main([*common, "--key", key, "--since", "2026-11-22"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
