"""The consumer loses nothing: to concurrency, to older versions, to one bad bundle or one bad name."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from data_aggregator.cli import main
from data_aggregator.models import Manifest
from data_aggregator.ops.consume import (
    REJECTED_FILE,
    STATE_DIR,
    BundleForwarder,
    Consumer,
    ConsumerBusyError,
)
from data_aggregator.sandbox.emulator import Clients
from tests.bundle_factory import SourceFile, build_bundle, bundle_key, manifest_for, put_bundle, sample_files
from tests.integration.ops.conftest import Buckets, unique


def keys_in(clients: Clients, bucket: str) -> list[str]:
    return [item["Key"] for item in clients.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# -- one consumer per target ---------------------------------------------------------------------


def test_a_second_consumer_on_the_same_target_refuses_to_start(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    first = Consumer(clients.s3, buckets.distribution, tmp_path, durable=False)
    with pytest.raises(ConsumerBusyError, match="another consumer"):
        Consumer(clients.s3, buckets.distribution, tmp_path, durable=False)
    first.close()
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False):
        pass  # the lock is free again once the first one closed


def test_two_consumers_racing_on_one_target_lose_nothing(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    bundles = {f"b-race-{i}": sample_files(3) for i in range(6)}
    for bundle_id, files in bundles.items():
        put_bundle(clients.s3, buckets.distribution, bundle_key(bundle_id), build_bundle(files, bundle_id))
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def racer() -> None:
        start.wait()
        try:
            with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as consumer:
                start_time = consumer.poll_once()
                outcomes.append(f"consumed {len(start_time.consumed)}")
        except ConsumerBusyError:
            outcomes.append("busy")

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # However the race went, every bundle that left Distribution is complete on disk.
    remaining = set(keys_in(clients, buckets.distribution))
    for bundle_id, files in bundles.items():
        if bundle_key(bundle_id) in remaining:
            continue
        directory = tmp_path / "2026/11/22/14" / bundle_id
        assert tree(directory) == {f.key for f in files} | {"manifest.json"}, bundle_id
        for f in files:
            assert (directory / f.key).read_bytes() == f.body
    # The lock lets exactly one consumer work at a time: either the second found it busy, or it came after
    # the first had taken everything. Two consumers sharing the bundles out means the lock did not hold.
    assert sorted(outcomes) in (["busy", "consumed 6"], ["consumed 0", "consumed 6"])
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as last:
        last.poll_once()
    assert keys_in(clients, buckets.distribution) == []
    assert len(list((tmp_path / "2026/11/22/14").iterdir())) == len(bundles)


def test_cli_second_consumer_and_a_file_as_target_exit_2(
    aws_env: object, clients: Clients, buckets: Buckets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["consume", "--bucket", buckets.distribution, "--once", "--no-fsync"]
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False):
        assert main([*args, "--target", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "another consumer" in err
    assert "Traceback" not in err

    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    assert main([*args, "--target", str(a_file)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main([*args, "--target", str(a_file / "below")]) == 2
    assert "cannot be used" in capsys.readouterr().err


# -- forwarding: the newest version wins -----------------------------------------------------------


def _versioned_bundle(bundle_id: str, body: bytes, event_time: str) -> bytes:
    files = [SourceFile("reports/daily.csv", body)]
    honest = manifest_for(files, bundle_id)
    entry = honest.files[0].model_copy(update={"event_time": event_time})
    return build_bundle(
        files, bundle_id, manifest=Manifest(bundle_id=bundle_id, created_at=honest.created_at, files=[entry])
    )


def test_a_retried_older_version_never_replaces_a_newer_one(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    store = unique("store")
    clients.s3.create_bucket(Bucket=store)
    forwarder = BundleForwarder(clients.s3, store, "in/")
    # The newer version's bundle sorts first by key, and the old one is replayed afterwards.
    put_bundle(
        clients.s3,
        buckets.distribution,
        bundle_key("b-new", "2026/11/22/14"),
        _versioned_bundle("b-new", b"v2\n", "2026-11-22T14:30:00.000Z"),
    )
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False, forwarder=forwarder) as consumer:
        assert consumer.poll_once().consumed[0].forwarded == 1
        put_bundle(
            clients.s3,
            buckets.distribution,
            bundle_key("b-old", "2026/11/22/15"),
            _versioned_bundle("b-old", b"v1\n", "2026-11-22T14:00:00.000Z"),
        )
        retried = consumer.poll_once().consumed[0]

    assert (retried.forwarded, retried.kept_newer) == (0, 1)
    stored = clients.s3.get_object(Bucket=store, Key="in/reports/daily.csv")
    assert stored["Body"].read() == b"v2\n"
    assert stored["Metadata"]["source-event-time"] == "2026-11-22T14:30:00.000000Z"
    assert keys_in(clients, buckets.distribution) == []  # the old bundle was still delivered to disk
    assert (tmp_path / "2026/11/22/15/b-old/reports/daily.csv").read_bytes() == b"v1\n"


def test_a_newer_version_replaces_an_older_one_and_two_versions_in_one_bundle_keep_the_newest(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    store = unique("store")
    clients.s3.create_bucket(Bucket=store)
    forwarder = BundleForwarder(clients.s3, store)
    put_bundle(
        clients.s3,
        buckets.distribution,
        bundle_key("b-1"),
        _versioned_bundle("b-1", b"old\n", "2026-11-22T14:00:00Z"),
    )
    newer, older = SourceFile("k.csv", b"newer", member="k~bbbbbbbbbbbb.csv"), SourceFile("k.csv", b"older")
    manifest = manifest_for([older, newer], "b-2")
    manifest = Manifest(
        bundle_id="b-2",
        created_at=manifest.created_at,
        files=[
            manifest.files[0].model_copy(update={"event_time": "2026-11-22T14:01:00Z"}),
            manifest.files[1].model_copy(update={"event_time": "2026-11-22T14:02:00Z"}),
        ],
    )
    put_bundle(
        clients.s3, buckets.distribution, bundle_key("b-2"), build_bundle([older, newer], "b-2", manifest=manifest)
    )
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False, forwarder=forwarder) as consumer:
        consumer.poll_once()
    assert clients.s3.get_object(Bucket=store, Key="reports/daily.csv")["Body"].read() == b"old\n"
    assert clients.s3.get_object(Bucket=store, Key="k.csv")["Body"].read() == b"newer"
    assert sorted(keys_in(clients, store)) == ["k.csv", "reports/daily.csv"]


# -- rejections: remembered, reported once, never blocking -------------------------------------------


def test_a_bundle_the_filesystem_cannot_hold_is_rejected_once_and_the_rest_delivered(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    # A safe name within the scanner's bounds (4,022 bytes, segments of 250) that only becomes too long
    # below the target directory (PATH_MAX, 4,096): only extraction can find out.
    too_deep = "/".join(["d" * 250] * 16) + "/f.txt"
    bad = bundle_key("b-0-deep")
    put_bundle(clients.s3, buckets.distribution, bad, build_bundle([SourceFile(too_deep, b"x")], "b-0-deep"))
    good = bundle_key("b-1-good")
    put_bundle(clients.s3, buckets.distribution, good, build_bundle(sample_files(2), "b-1-good"))

    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as consumer:
        first = consumer.poll_once()
        assert [r.key for r in first.rejected] == [bad]
        assert "File name too long" in first.rejected[0].problems[0]
        assert [c.key for c in first.consumed] == [good]
        second = consumer.poll_once()
        assert (second.rejected, second.errors, second.still_rejected) == ([], [], [bad])

    # Remembered across restarts, on disk, where an operator (or a check) can read it.
    recorded = json.loads((tmp_path / STATE_DIR / REJECTED_FILE).read_text())
    assert list(recorded) == [bad]
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as restarted:
        again = restarted.poll_once()
    assert (again.rejected, again.still_rejected) == ([], [bad])


def test_manifest_named_directory_bundle_is_rejected_and_does_not_block(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    bad = bundle_key("b-0-manifest-dir")
    files = [SourceFile("manifest.json/report.csv", b"a"), SourceFile("fine.csv", b"b")]
    put_bundle(clients.s3, buckets.distribution, bad, build_bundle(files, "b-0-manifest-dir"))
    good = bundle_key("b-1-after")
    put_bundle(clients.s3, buckets.distribution, good, build_bundle(sample_files(1), "b-1-after"))
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as consumer:
        result = consumer.poll_once()
    assert [r.key for r in result.rejected] == [bad]
    assert [c.key for c in result.consumed] == [good]


@pytest.mark.usefixtures("aws_env")
def test_cli_reports_each_rejection_once_and_keeps_exiting_1_while_it_is_there(
    clients: Clients, buckets: Buckets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = bundle_key("b-bad-once")
    put_bundle(clients.s3, buckets.distribution, broken, b"not a bundle")
    args = ["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--once", "--no-fsync"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count(f"REJECTED {broken}") == 1
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "REJECTED" not in captured.out + captured.err
    assert "1 still rejected from earlier runs" in captured.err
