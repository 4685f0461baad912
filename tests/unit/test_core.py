"""The bundle writer, limits and the timeout guard, on in-memory streams."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_aggregator import core
from data_aggregator.core import BundleWriter, ShortReadError, TimeoutGuard, bundle_key, new_bundle_id, plan_bundles
from data_aggregator.models import SourceObject
from tests.support import chunked, read_bundle, sha256_hex

CREATED = datetime(2026, 11, 22, 21, 5, 9, tzinfo=UTC)


def obj(key: str, size: int | None = None) -> SourceObject:
    return SourceObject(bucket="land", key=key, etag="e-" + key, size=size, event_time="2026-11-22T21:00:00.000Z")


def build(files: dict[str, bytes], **kwargs: object) -> core.BuiltBundle:
    with BundleWriter(bundle_id="b1", created_at=CREATED, **kwargs) as writer:  # type: ignore[arg-type]
        for key, data in files.items():
            writer.add(obj(key), member=key, size=len(data), chunks=chunked(data, 1000))
        return writer.finish()


def test_bundle_is_standard_tar_gz_with_manifest_last() -> None:
    files = {"a.json": b'{"x": 1}\n' * 500, "dir/b.bin": os.urandom(3000), "empty": b""}
    bundle = build(files)
    data = bundle.body.read()
    assert len(data) == bundle.size
    assert bundle.sha256_hex == sha256_hex(data)
    assert base64.b64decode(bundle.sha256_b64) == hashlib.sha256(data).digest()
    assert bundle.input_bytes == sum(len(v) for v in files.values())

    opened = read_bundle(data)
    assert opened.order == ["a.json", "dir/b.bin", "empty", "manifest.json"]
    for name, content in files.items():
        assert opened.members[name] == content
    manifest = opened.manifest
    assert manifest["bundle_id"] == "b1"
    assert manifest["created_at"] == "2026-11-22T21:05:09.000Z"
    assert [f["member"] for f in manifest["files"]] == list(files)
    for entry in manifest["files"]:
        assert entry["sha256"] == sha256_hex(files[entry["member"]])
        assert entry["size"] == len(files[entry["member"]])
        assert entry["key"] == entry["member"]
        assert entry["etag"] == "e-" + entry["key"]
    # The gzip layer is plain gzip; the tar layer is what tar(1) reads.
    assert gzip.decompress(data)[:100].startswith(b"a.json")


def test_tar_command_lists_the_members(tmp_path: Path) -> None:
    bundle = build({"ü/名前.txt": b"x", "plain": b"y"})
    path = tmp_path / "b.tar.gz"
    path.write_bytes(bundle.body.read())
    listed = subprocess.run(["tar", "-tzf", str(path)], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines() == ["ü/名前.txt", "plain", "manifest.json"]


def test_member_mtime_comes_from_the_event_time() -> None:
    bundle = build({"a": b"1"})
    with tarfile.open(fileobj=bundle.body, mode="r:gz") as tar:
        info = tar.getmember("a")
    assert info.mtime == int(datetime(2026, 11, 22, 21, 0, tzinfo=UTC).timestamp())
    assert info.mode == 0o644
    assert info.isreg()


@pytest.mark.parametrize("given", [b"short", b"much too long"])
def test_a_source_that_breaks_its_promise_is_detected(given: bytes) -> None:
    with BundleWriter(bundle_id="b", created_at=CREATED) as writer, pytest.raises(ShortReadError):
        writer.add(obj("k"), member="k", size=8, chunks=[given])


def test_a_source_that_raises_midway_propagates_and_the_writer_discards() -> None:
    def broken() -> Iterator[bytes]:
        yield b"abc"
        raise OSError("connection reset")

    writer = BundleWriter(bundle_id="b", created_at=CREATED)
    with writer, pytest.raises(OSError, match="reset"):
        writer.add(obj("k"), member="k", size=10, chunks=broken())
    assert writer._spool.closed


def test_member_names_must_be_unique_and_not_the_manifest() -> None:
    with BundleWriter(bundle_id="b", created_at=CREATED) as writer:
        writer.add(obj("a"), member="a", size=0, chunks=[])
        with pytest.raises(ValueError, match="already used"):
            writer.add(obj("a"), member="a", size=0, chunks=[])
        with pytest.raises(ValueError, match="already used"):
            writer.add(obj("m"), member="manifest.json", size=0, chunks=[])


def test_stdlib_fallback_produces_the_same_contents(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"a": b"hello" * 1000}
    fast = read_bundle(build(files).body.read())
    monkeypatch.setattr(core, "HAVE_ISAL", False)
    slow = read_bundle(build(files).body.read())
    assert fast.members["a"] == slow.members["a"] == files["a"]


def test_compression_levels_all_round_trip() -> None:
    data = (b"line of fairly compressible text %d\n" * 3000) % tuple(range(3000))
    sizes = []
    for level in range(4):
        bundle = build({"a": data}, compression_level=level)
        assert read_bundle(bundle.body.read()).members["a"] == data
        sizes.append(bundle.size)
    assert sizes[0] > sizes[3]  # level 0 stores, level 3 compresses hardest


@pytest.mark.parametrize("threads", [1, 2])
def test_threaded_compression_yields_the_same_members_in_one_standard_gzip_stream(threads: int, tmp_path: Path) -> None:
    files = {"a.json": b'{"x": 1}\n' * 300_000, "b.bin": os.urandom(3_000_000), "empty": b""}
    plain = read_bundle(build(files).body.read())
    bundle = build(files, compression_threads=threads)
    data = bundle.body.read()
    assert len(data) == bundle.size
    assert bundle.sha256_hex == sha256_hex(data)
    threaded = read_bundle(data)
    assert threaded.order == plain.order
    assert threaded.members == plain.members  # manifest included: same hashes, sizes and names
    path = tmp_path / "t.tar.gz"
    path.write_bytes(data)
    listed = subprocess.run(["tar", "-tzf", str(path)], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines() == ["a.json", "b.bin", "empty", "manifest.json"]


def test_threaded_writer_releases_its_threads_when_finished_or_discarded() -> None:
    before = threading.active_count()
    build({"a": b"x" * 3_000_000}, compression_threads=2).close()
    with BundleWriter(bundle_id="b", created_at=CREATED, compression_threads=2) as writer:
        writer.add(obj("a"), member="a", size=3, chunks=[b"abc"])  # left without finish: discarded
    assert writer._spool.closed
    assert threading.active_count() == before


class _FullDisk:
    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("threads", [0, 1])
def test_a_failing_spool_surfaces_in_the_caller_and_discarding_does_not_mask_it(threads: int) -> None:
    """A worker thread's write error must reach the writer's caller, and cleanup must not replace it."""
    before = threading.active_count()
    data = os.urandom(4_000_000)

    def fill_and_seal(writer: BundleWriter) -> None:
        # With a worker thread the error may only be seen when sealing; either way it must surface.
        writer.add(obj("k"), member="k", size=len(data), chunks=chunked(data, 1 << 20))
        writer.finish()

    with BundleWriter(bundle_id="b", created_at=CREATED, compression_threads=threads) as writer:
        writer._sink._target = _FullDisk()  # type: ignore[assignment]
        with pytest.raises(OSError, match="No space left"):
            fill_and_seal(writer)
    assert writer._spool.closed
    assert threading.active_count() == before


def test_spool_spills_to_disk_only_above_the_threshold(tmp_path: Path) -> None:
    small = build({"small": b"x" * 1000}, spool_memory_bytes=64 * 1024, spool_dir=str(tmp_path))
    big = build({"big": os.urandom(300_000)}, spool_memory_bytes=64 * 1024, spool_dir=str(tmp_path))
    assert small.body._rolled is False  # type: ignore[attr-defined]
    assert big.body._rolled is True  # type: ignore[attr-defined]
    assert len(read_bundle(big.body.read()).members["big"]) == 300_000
    big.close()
    assert big.body.closed


def test_bundle_key_and_id() -> None:
    bundle_id = new_bundle_id(CREATED)
    assert bundle_id.startswith("20261122T210509Z-")
    assert bundle_key("bundles/", CREATED, "x") == "bundles/2026/11/22/21/x.tar.gz"
    assert bundle_key("", CREATED, "x") == "2026/11/22/21/x.tar.gz"
    assert new_bundle_id(CREATED) != bundle_id


def test_plan_splits_by_files_and_bytes_keeping_order_and_every_object_once() -> None:
    objects = [obj(f"k{i}", size=10) for i in range(25)]
    groups = plan_bundles(objects, max_files=10, max_input_bytes=1000)
    assert [len(g) for g in groups] == [10, 10, 5]
    groups = plan_bundles(objects, max_files=100, max_input_bytes=45)
    assert [len(g) for g in groups] == [4] * 6 + [1]
    assert [o for g in groups for o in g] == objects


def test_plan_gives_an_oversized_object_a_bundle_of_its_own() -> None:
    objects = [obj("a", 10), obj("huge", 5000), obj("b", 10), obj("unknown")]
    groups = plan_bundles(objects, max_files=100, max_input_bytes=100)
    assert [[o.key for o in g] for g in groups] == [["a"], ["huge"], ["b", "unknown"]]
    assert plan_bundles([], max_files=1, max_input_bytes=1) == []


def test_timeout_guard() -> None:
    remaining = [30.0]
    guard = TimeoutGuard(remaining_seconds=lambda: remaining[0], reserve_seconds=10, bytes_per_second=1_000_000)
    assert guard.can_start(10_000_000)  # 10 s of work + 10 s reserve < 30 s
    assert not guard.can_start(25_000_000)
    remaining[0] = 9.0
    assert not guard.can_start(0)  # inside the reserve nothing starts
    assert guard.stops == 2


@pytest.mark.slow
def test_large_object_streams_with_bounded_memory(tmp_path: Path) -> None:
    """400 MB through the writer in a fresh interpreter; its own peak RSS (VmHWM) stays small."""
    script = textwrap.dedent(
        """
        import os, sys
        from datetime import UTC, datetime
        from data_aggregator.core import BundleWriter
        from data_aggregator.models import SourceObject
        block = os.urandom(1 << 20)
        total = 400 << 20
        def chunks():
            for _ in range(total >> 20):
                yield block
        with BundleWriter(bundle_id="big", created_at=datetime.now(UTC), spool_memory_bytes=8 << 20,
                          spool_dir=sys.argv[1]) as writer:
            writer.add(SourceObject("b", "big.bin"), member="big.bin", size=total, chunks=chunks())
            bundle = writer.finish()
        hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
        print(bundle.size, bundle.input_bytes, int(hwm) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True, timeout=300
    )
    size, input_bytes, peak_mib = (int(x) for x in result.stdout.split())
    assert input_bytes == 400 << 20
    assert size > 400 << 20  # random data does not compress; it all went through the spool on disk
    assert peak_mib < 150, f"peak RSS {peak_mib} MiB while bundling 400 MiB"
