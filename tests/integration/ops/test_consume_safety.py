"""The consumer loses nothing to colliding store keys, retried versions, bad credentials, Ctrl-C,
a bundle that kills it, a power cut or a planted symlink."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

import data_aggregator.ops.consume as consume_module
from data_aggregator import cli
from data_aggregator.cli import main
from data_aggregator.models import Manifest
from data_aggregator.ops.bundles import scan_bundle
from data_aggregator.ops.consume import ATTEMPTS_FILE, MAX_ATTEMPTS, REJECTED_FILE, STATE_DIR, BundleForwarder, Consumer
from data_aggregator.sandbox.emulator import Clients
from tests.bundle_factory import SourceFile, build_bundle, bundle_key, manifest_for, put_bundle, sample_files
from tests.integration.ops.conftest import Buckets, unique


def keys_in(clients: Clients, bucket: str) -> list[str]:
    return [item["Key"] for item in clients.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# -- 1. one object per source key --------------------------------------------------------------------


def test_source_keys_that_sanitize_alike_keep_their_own_objects_in_the_store(
    clients: Clients, buckets: Buckets, tmp_path: Path
) -> None:
    store = unique("store")
    clients.s3.create_bucket(Bucket=store)
    files = [
        SourceFile("a/b", b"plain"),
        SourceFile("a//b", b"double slash", member="a/b~1"),
        SourceFile("/a/b", b"leading slash", member="a/b~2"),
        SourceFile("a/b/", b"trailing slash", member="a/b~3"),
        SourceFile("manifest.json/x", b"manifest dir", member="manifest%2Ejson/x"),
        SourceFile("manifest%2Ejson/x", b"escaped manifest dir", member="manifest%2Ejson/x~1"),
        SourceFile("tab\tkey", b"control", member="tab%09key"),
        SourceFile("%/tab%09key", b"looks escaped", member="pct/tab%09key"),
    ]
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-collide"), build_bundle(files, "b-collide"))
    forwarder = BundleForwarder(clients.s3, store, "in/")
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False, forwarder=forwarder) as consumer:
        result = consumer.poll_once()

    assert result.consumed[0].forwarded == len(files)
    assert len(keys_in(clients, store)) == len(files)
    for entry, source in zip(result.consumed[0].files, files, strict=True):
        stored = clients.s3.get_object(Bucket=store, Key=forwarder.object_key(entry))
        assert stored["Body"].read() == source.body, source.key
        assert stored["Metadata"]["source-key"] == quote(source.key, safe="/")
    # Keys a store takes as they are are forwarded as they are.
    assert forwarder.object_key(result.consumed[0].files[1]) == "in/a//b"
    assert keys_in(clients, buckets.distribution) == []


# -- 2. an undecidable order keeps what the store has ---------------------------------------------------


def _bundle_with_time(bundle_id: str, body: bytes, event_time: str | None, created_at: str) -> bytes:
    files = [SourceFile("reports/daily.csv", body)]
    entry = manifest_for(files, bundle_id).files[0].model_copy(update={"event_time": event_time})
    return build_bundle(files, bundle_id, manifest=Manifest(bundle_id=bundle_id, created_at=created_at, files=[entry]))


@pytest.mark.parametrize("event_time", ["2026-11-22T14:30:00.000Z", None], ids=["equal-event-times", "no-event-times"])
def test_a_retried_old_version_in_a_later_bundle_does_not_win_an_undecidable_tie(
    clients: Clients, buckets: Buckets, tmp_path: Path, event_time: str | None
) -> None:
    store = unique("store")
    clients.s3.create_bucket(Bucket=store)
    forwarder = BundleForwarder(clients.s3, store)
    put_bundle(
        clients.s3,
        buckets.distribution,
        bundle_key("b-current", "2026/11/22/14"),
        _bundle_with_time("b-current", b"current\n", event_time, "2026-11-22T14:35:00Z"),
    )
    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False, forwarder=forwarder) as consumer:
        assert consumer.poll_once().consumed[0].forwarded == 1
        # The same event, retried, lands in a bundle created later.
        put_bundle(
            clients.s3,
            buckets.distribution,
            bundle_key("b-retried", "2026/11/22/16"),
            _bundle_with_time("b-retried", b"retried old\n", event_time, "2026-11-22T16:05:00Z"),
        )
        retried = consumer.poll_once().consumed[0]

    assert clients.s3.get_object(Bucket=store, Key="reports/daily.csv")["Body"].read() == b"current\n"
    assert (retried.forwarded, retried.kept_newer, retried.kept_undecided) == (0, 0, 1)
    assert keys_in(clients, buckets.distribution) == []


# -- 3. refused store credentials end the run -----------------------------------------------------------


class RefusingStore:
    """An S3 client of a store that refuses the access key, as S3 and MinIO do."""

    def __init__(self) -> None:
        self.calls = 0

    def _refuse(self, **_kwargs: Any) -> None:
        self.calls += 1
        raise ClientError(
            {"Error": {"Code": "InvalidAccessKeyId", "Message": "The access key ID you provided does not exist"}},
            "HeadObject",
        )

    head_object = put_object = _refuse


@pytest.mark.usefixtures("aws_env")
def test_refused_forwarding_credentials_exit_2_with_one_line_and_keep_the_bundles(
    clients: Clients,
    buckets: Buckets,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for index in range(2):
        bundle_id = f"b-creds-{index}"
        put_bundle(clients.s3, buckets.distribution, bundle_key(bundle_id), build_bundle(sample_files(1), bundle_id))
    store = RefusingStore()
    monkeypatch.setattr(cli, "_forwarding_client", lambda _args: store)
    args = ["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--once", "--no-fsync"]
    code = main([*args, "--upload-endpoint", "http://store.invalid:9000", "--upload-bucket", "store"])

    err = capsys.readouterr().err
    assert code == 2
    assert store.calls == 1  # the run ended at the first refusal, not bundle after bundle
    assert "InvalidAccessKeyId" in err
    assert "retry later" not in err
    assert "Traceback" not in err
    assert len(keys_in(clients, buckets.distribution)) == 2
    assert not (tmp_path / STATE_DIR / REJECTED_FILE).exists()
    assert not (tmp_path / STATE_DIR / ATTEMPTS_FILE).exists()


# -- 4. Ctrl-C ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_ctrl_c_finishes_the_current_bundle_and_exits_130(
    clients: Clients, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bundle_key("b-ctrl-c")
    put_bundle(clients.s3, buckets.distribution, key, build_bundle(sample_files(2), "b-ctrl-c"))
    original = Consumer.consume

    def interrupted_while_consuming(self: Consumer, key: str, etag: str) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return original(self, key, etag)

    monkeypatch.setattr(Consumer, "consume", interrupted_while_consuming)
    before = signal.getsignal(signal.SIGINT)
    args = ["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--no-fsync", "--interval", "600"]

    assert main(args) == 130
    assert signal.getsignal(signal.SIGINT) is before
    assert keys_in(clients, buckets.distribution) == []  # the bundle in hand was finished...
    assert files_under(tmp_path / "2026/11/22/14/b-ctrl-c") == {f.key for f in sample_files(2)} | {"manifest.json"}


@pytest.mark.usefixtures("aws_env")
def test_a_second_ctrl_c_stops_at_once_and_leaves_the_bundle(
    clients: Clients, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bundle_key("b-ctrl-c-twice")
    put_bundle(clients.s3, buckets.distribution, key, build_bundle(sample_files(2), "b-ctrl-c-twice"))
    original = scan_bundle

    def interrupted_twice(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)  # pragma: no cover - the second Ctrl-C comes first

    monkeypatch.setattr(consume_module, "scan_bundle", interrupted_twice)
    before = signal.getsignal(signal.SIGINT)
    args = ["consume", "--bucket", buckets.distribution, "--target", str(tmp_path), "--no-fsync", "--interval", "600"]

    assert main(args) == 130
    assert signal.getsignal(signal.SIGINT) is before
    assert keys_in(clients, buckets.distribution) == [key]  # not deleted: its files are not in place
    assert not (tmp_path / "2026").exists()
    assert not (tmp_path / STATE_DIR / ATTEMPTS_FILE).exists()  # Ctrl-C is not the bundle's fault


# -- 5. a bundle that kills the consumer ---------------------------------------------------------------


class ProcessDied(BaseException):
    """Stands in for an out-of-memory kill: nothing after it runs."""


def test_a_bundle_that_kills_the_consumer_is_rejected_after_the_last_attempt(
    clients: Clients, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killer = bundle_key("b-0-killer")
    put_bundle(clients.s3, buckets.distribution, killer, build_bundle(sample_files(1), "b-0-killer"))
    good = bundle_key("b-1-good")
    put_bundle(clients.s3, buckets.distribution, good, build_bundle(sample_files(1), "b-1-good"))
    original = scan_bundle

    def dies_on_the_killer(*args: Any, **kwargs: Any) -> Any:
        if "b-0-killer" in kwargs["source"]:
            raise ProcessDied
        return original(*args, **kwargs)

    monkeypatch.setattr(consume_module, "scan_bundle", dies_on_the_killer)
    for _ in range(MAX_ATTEMPTS):
        with (
            Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as consumer,
            pytest.raises(ProcessDied),
        ):
            consumer.poll_once()
        assert keys_in(clients, buckets.distribution) == [killer, good]  # the good one never got its turn

    with Consumer(clients.s3, buckets.distribution, tmp_path, durable=False) as consumer:
        result = consumer.poll_once()
    assert [r.key for r in result.rejected] == [killer]
    assert f"stopped {MAX_ATTEMPTS} times" in result.rejected[0].problems[0]
    assert [c.key for c in result.consumed] == [good]
    assert keys_in(clients, buckets.distribution) == [killer]
    assert list(json.loads((tmp_path / STATE_DIR / REJECTED_FILE).read_text())) == [killer]
    assert not (tmp_path / STATE_DIR / ATTEMPTS_FILE).exists()


# -- 6. durable before the delete ------------------------------------------------------------------------


def test_manifest_directories_and_new_parents_are_fsynced_before_the_bundle_is_deleted(
    private_clients: Clients, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path.resolve() / "target"
    key = bundle_key("b-durable")
    files = [SourceFile("x/y/z.txt", b"deep"), SourceFile("x/w.txt", b"shallow")]
    put_bundle(private_clients.s3, buckets.distribution, key, build_bundle(files, "b-durable"))
    events: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        events.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def recording_delete(**_kwargs: Any) -> None:
        events.append("DELETE")

    monkeypatch.setattr(os, "fsync", recording_fsync)
    private_clients.s3.meta.events.register("before-call.s3.DeleteObject", recording_delete)
    with Consumer(private_clients.s3, buckets.distribution, target, durable=True) as consumer:
        staging_root = str(target / STATE_DIR / "staging") + "/"
        assert [c.key for c in consumer.poll_once().consumed] == [key]

    synced = events[: events.index("DELETE")]
    staged = [path.removeprefix(staging_root).split("/", 1)[1:] for path in synced if path.startswith(staging_root)]
    staged_names = ["/".join(parts) if parts else "." for parts in staged]
    assert {"manifest.json", "x/y/z.txt", "x/w.txt"} <= set(staged_names)
    # Staging directories bottom-up, before the rename into place.
    assert staged_names.index("x/y") < staged_names.index("x") < staged_names.index(".")
    for created in ("2026/11/22/14", "2026/11/22", "2026/11", "2026", "."):
        assert str((target / created).resolve()) in synced, created


# -- 7. symlinks in the target -------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_a_planted_date_directory_symlink_is_refused_with_exit_2(
    clients: Clients, buckets: Buckets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    (target / "2026").symlink_to(elsewhere)
    key = bundle_key("b-symlink")
    put_bundle(clients.s3, buckets.distribution, key, build_bundle(sample_files(1), "b-symlink"))

    code = main(["consume", "--bucket", buckets.distribution, "--target", str(target), "--once", "--no-fsync"])

    err = capsys.readouterr().err
    assert code == 2
    assert "symbolic link" in err
    assert "Traceback" not in err
    assert list(elsewhere.iterdir()) == []
    assert keys_in(clients, buckets.distribution) == [key]


@pytest.mark.usefixtures("aws_env")
def test_a_symlinked_lock_or_state_directory_is_refused_and_nothing_is_truncated(
    clients: Clients, buckets: Buckets, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    locked = tmp_path / "locked"
    (locked / STATE_DIR).mkdir(parents=True)
    (locked / STATE_DIR / "lock").symlink_to(precious)
    args = ["consume", "--bucket", buckets.distribution, "--once", "--no-fsync"]

    assert main([*args, "--target", str(locked)]) == 2
    assert precious.read_text() == "keep me\n"
    assert "Traceback" not in capsys.readouterr().err

    state_elsewhere = tmp_path / "state-elsewhere"
    state_elsewhere.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / STATE_DIR).symlink_to(state_elsewhere)
    assert main([*args, "--target", str(linked)]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err
    assert "Traceback" not in err
    assert list(state_elsewhere.iterdir()) == []
