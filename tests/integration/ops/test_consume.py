"""``consume``: verify, extract safely, delete only after success, survive restarts."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from data_aggregator.cli import main
from data_aggregator.ops.consume import STATE_DIR, BundleForwarder, Consumer
from data_aggregator.sandbox.emulator import Clients
from tests.bundle_factory import SourceFile, build_bundle, bundle_key, put_bundle, sample_files, sha256_hex
from tests.integration.ops.conftest import Buckets, unique


def keys_in(clients: Clients, bucket: str) -> list[str]:
    return [item["Key"] for item in clients.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def delivered(root: Path) -> set[str]:
    """Files outside the consumer's own state directory (its lock and rejection record)."""
    return {name for name in tree(root) if STATE_DIR not in name.split("/")}


def test_bundles_are_extracted_then_deleted(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    files_a = [*sample_files(2), SourceFile("odd//key", b"odd", member="odd/key")]
    files_b = [SourceFile("ünï/x.json", b"{}")]
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-a", "2026/11/22/14"), build_bundle(files_a, "b-a"))
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-b", "2026/11/22/15"), build_bundle(files_b, "b-b"))
    consumed: list[str] = []
    consumer = Consumer(
        clients.s3,
        buckets.distribution,
        tmp_path,
        durable=True,
        on_consumed=lambda b: consumed.append(b.bundle_id),
    )

    result = consumer.poll_once()

    assert [b.bundle_id for b in result.consumed] == ["b-a", "b-b"] == consumed
    assert result.rejected == []
    assert keys_in(clients, buckets.distribution) == []
    first = tmp_path / "2026/11/22/14/b-a"
    assert result.consumed[0].directory == first
    assert (first / "odd/key").read_bytes() == b"odd"
    assert (first / "incoming/001.jsonl").read_bytes() == files_a[1].body
    assert (tmp_path / "2026/11/22/15/b-b/ünï/x.json").read_bytes() == b"{}"
    assert [e.key for e in result.consumed[0].files] == [
        "incoming/000.jsonl",
        "incoming/001.jsonl",
        "odd//key",
    ]
    assert (first / "manifest.json").is_file()
    assert tree(tmp_path / STATE_DIR) == {"lock"}


def test_corrupt_bundle_is_left_in_place_and_not_retried_until_replaced(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    key = bundle_key("b-corrupt")
    good = build_bundle(sample_files(), "b-corrupt")
    broken = bytearray(good)
    broken[len(broken) // 2] ^= 0x55
    put_bundle(clients.s3, buckets.distribution, key, bytes(broken), sha256=sha256_hex(good))
    consumer = Consumer(clients.s3, buckets.distribution, tmp_path, durable=False)

    first = consumer.poll_once()
    assert first.consumed == []
    assert [r.key for r in first.rejected] == [key]
    assert "downloaded bytes hash to" in first.rejected[0].problems[0]
    assert keys_in(clients, buckets.distribution) == [key]
    assert delivered(tmp_path) == set()

    second = consumer.poll_once()
    assert (second.skipped, second.rejected) == (1, [])

    put_bundle(clients.s3, buckets.distribution, key, good)  # an operator replay writes a good copy
    third = consumer.poll_once()
    assert [b.key for b in third.consumed] == [key]
    assert keys_in(clients, buckets.distribution) == []


def hostile(tar: tarfile.TarFile) -> None:
    for name in ("../../escaped", "/abs/escaped"):
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../.."
    tar.addfile(link)


def test_path_traversal_bundle_is_refused_and_nothing_escapes(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    target = tmp_path / "a" / "b" / "target"
    target.mkdir(parents=True)
    key = bundle_key("b-evil")
    put_bundle(clients.s3, buckets.distribution, key, build_bundle(sample_files(1), "b-evil", extra=hostile))
    consumer = Consumer(clients.s3, buckets.distribution, target, durable=False)

    result = consumer.poll_once()

    assert result.consumed == []
    problems = "\n".join(result.rejected[0].problems)
    assert "'../../escaped': unsafe name" in problems
    assert "'/abs/escaped': unsafe name" in problems
    assert "'link': symbolic link" in problems
    assert delivered(tmp_path) == set()  # not even the one good file: a rejected bundle leaves nothing
    assert keys_in(clients, buckets.distribution) == [key]


class FailingDeletes:
    """Makes DeleteObject fail ``times`` times, as a crash between extraction and delete would."""

    def __init__(self, clients: Clients, times: int) -> None:
        self.remaining = times
        clients.s3.meta.events.register("before-call.s3.DeleteObject", self._fail)

    def _fail(self, **_: Any) -> None:
        if self.remaining > 0:
            self.remaining -= 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "simulated"}}, "DeleteObject")


def test_restart_after_failure_before_delete_reprocesses_without_duplicates(
    private_clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    files = sample_files(3)
    key = bundle_key("b-restart")
    put_bundle(private_clients.s3, buckets.distribution, key, build_bundle(files, "b-restart"))
    FailingDeletes(private_clients, times=1)

    with Consumer(private_clients.s3, buckets.distribution, tmp_path, durable=False) as first_run:
        crashed = first_run.poll_once()  # the process then dies, which releases its lock
    assert crashed.consumed == []
    assert "simulated" in crashed.errors[0]
    assert keys_in(private_clients, buckets.distribution) == [key]  # at-least-once: still there
    extracted = tmp_path / "2026/11/22/14/b-restart"
    assert tree(extracted) == {f.key for f in files} | {"manifest.json"}
    (extracted / "stale-from-an-older-attempt").write_text("x")
    (tmp_path / STATE_DIR / "staging" / "half-done").mkdir()
    (tmp_path / STATE_DIR / "incoming" / "x.tar.gz.part").write_bytes(b"partial")

    restarted = Consumer(private_clients.s3, buckets.distribution, tmp_path, durable=False)
    assert tree(tmp_path / STATE_DIR) == {"lock"}  # leftovers of the crash are discarded on start
    result = restarted.poll_once()

    assert [b.key for b in result.consumed] == [key]
    assert tree(extracted) == {f.key for f in files} | {"manifest.json"}  # replaced, not merged
    assert keys_in(private_clients, buckets.distribution) == []


def test_transient_download_error_is_retried_on_the_next_poll(
    private_clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    key = bundle_key("b-flaky")
    put_bundle(private_clients.s3, buckets.distribution, key, build_bundle(sample_files(), "b-flaky"))
    failures = [1]

    def fail_once(**_: Any) -> None:
        if failures:
            failures.pop()
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "simulated"}}, "GetObject")

    private_clients.s3.meta.events.register("before-call.s3.GetObject", fail_once)
    consumer = Consumer(private_clients.s3, buckets.distribution, tmp_path, durable=False)
    assert consumer.poll_once().errors
    assert [b.key for b in consumer.poll_once().consumed] == [key]


def test_forwarding_uploads_every_file_with_its_checksum(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    store = unique("minio")
    clients.s3.create_bucket(Bucket=store)
    files = [*sample_files(2), SourceFile("a b/ü+%.txt", b"odd", member="a b/ü+%.txt")]
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-fwd"), build_bundle(files, "b-fwd"))
    consumer = Consumer(
        clients.s3,
        buckets.distribution,
        tmp_path,
        durable=False,
        forwarder=BundleForwarder(clients.s3, store, "in/"),
    )

    result = consumer.poll_once()

    assert result.consumed[0].forwarded == 3
    for f in files:
        obj = clients.s3.get_object(Bucket=store, Key=f"in/{f.member_name}")
        assert obj["Body"].read() == f.body
        assert obj["Metadata"]["content-sha256"] == sha256_hex(f.body)
        assert obj["Metadata"]["bundle-id"] == "b-fwd"
    assert keys_in(clients, buckets.distribution) == []


def test_failed_forwarding_keeps_the_bundle(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-nofwd"), build_bundle(sample_files(), "b-nofwd"))
    consumer = Consumer(
        clients.s3,
        buckets.distribution,
        tmp_path,
        durable=False,
        forwarder=BundleForwarder(clients.s3, unique("missing-store"), ""),
    )
    result = consumer.poll_once()
    assert result.consumed == []
    assert "NoSuchBucket" in result.errors[0]
    assert keys_in(clients, buckets.distribution) == [bundle_key("b-nofwd")]
    assert not (tmp_path / "2026").exists()


def test_run_stops_after_max_bundles(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    for index in range(3):
        bundle_id = f"b-max-{index}"
        put_bundle(clients.s3, buckets.distribution, bundle_key(bundle_id), build_bundle(sample_files(1), bundle_id))
    totals = Consumer(clients.s3, buckets.distribution, tmp_path, durable=False).run(
        threading.Event(), interval=0.01, max_bundles=2
    )
    assert len(totals.consumed) == 2
    assert len(keys_in(clients, buckets.distribution)) == 1


def test_unusual_keys_get_a_safe_directory(clients: Clients, buckets: Buckets, tmp_path: Path) -> None:
    consumer = Consumer(clients.s3, buckets.distribution, tmp_path, durable=False)
    assert consumer.bundle_directory("bundles/2026/11/22/14/x.tar.gz") == tmp_path / "2026/11/22/14/x"
    assert consumer.bundle_directory("other/2026/11/22/14/x.tar.gz") == tmp_path / "2026/11/22/14/x"
    for odd in ("bundles/../../x.tar.gz", "bundles//x.tar.gz", f"bundles/{STATE_DIR}/x.tar.gz", "2026/1/2/3/x.tar.gz"):
        assert consumer.bundle_directory(odd).parent == tmp_path / "unusual-keys"


@pytest.mark.usefixtures("aws_env")
def test_cli_consume_once(
    clients: Clients,
    buckets: Buckets,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-cli"), build_bundle(sample_files(), "b-cli"))
    assert main(["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--once", "--no-fsync"]) == 0
    assert "consumed bundles/2026/11/22/14/b-cli.tar.gz: 3 file(s)" in capsys.readouterr().out

    broken = bundle_key("b-cli-bad")
    put_bundle(clients.s3, buckets.distribution, broken, b"not a bundle at all")
    assert main(["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--once"]) == 1
    assert f"REJECTED {broken}" in capsys.readouterr().out

    monkeypatch.delenv("UPLOAD_AWS_ACCESS_KEY_ID", raising=False)
    args = ["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--once"]
    assert main([*args, "--upload-bucket", "x-bucket"]) == 2
    assert "needs both --upload-endpoint and --upload-bucket" in capsys.readouterr().err
    assert main([*args, "--upload-bucket", "x-bucket", "--upload-endpoint", clients.s3.meta.endpoint_url]) == 2
    assert "set UPLOAD_AWS_ACCESS_KEY_ID" in capsys.readouterr().err

    store = unique("store")
    clients.s3.create_bucket(Bucket=store)
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-cli-fwd"), build_bundle(sample_files(2), "b-cli-fwd"))
    monkeypatch.setenv("UPLOAD_AWS_ACCESS_KEY_ID", "minio")
    monkeypatch.setenv("UPLOAD_AWS_SECRET_ACCESS_KEY", "minio-secret")
    code = main(
        [
            *args,
            "--prefix",
            "bundles/2026/11/22/14/b-cli-fwd",
            "--upload-bucket",
            store,
            "--upload-endpoint",
            clients.s3.meta.endpoint_url,
        ]
    )
    assert code == 0
    assert len(keys_in(clients, store)) == 2
    assert (tmp_path / "2026/11/22/14/b-cli-fwd/manifest.json").is_file()
