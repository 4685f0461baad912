"""The bundle checker: every way a bundle can be wrong must be reported, and a good one accepted."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from data_aggregator.models import Manifest
from data_aggregator.ops.bundles import scan_bundle, unsafe_member_reason
from tests.bundle_factory import SourceFile, build_bundle, manifest_for, sample_files, sha256_hex


def scan(data: bytes, expected: str | None = None) -> list[str]:
    return scan_bundle(io.BytesIO(data), source="test", expected_sha256=expected).problems


def test_good_bundle_passes_with_every_member_hashed() -> None:
    files = sample_files(3)
    data = build_bundle(files, "b-good")
    report = scan_bundle(io.BytesIO(data), source="test", expected_sha256=sha256_hex(data))
    assert report.ok, report.problems
    assert report.object_sha256 == sha256_hex(data)
    assert report.object_size == len(data)
    assert report.manifest is not None
    assert report.manifest.bundle_id == "b-good"
    assert [(m.name, m.sha256) for m in report.members] == [(f.key, sha256_hex(f.body)) for f in files]
    assert "OK" in report.render()


def test_unicode_and_long_member_names_are_accepted() -> None:
    files = [
        SourceFile("odd/ünïcødé/日本語.json", b"{}"),
        SourceFile("a/" + "x" * 255 + "/f", b""),
        SourceFile("z", b""),
    ]
    data = build_bundle(files)
    assert scan(data, sha256_hex(data)) == []


def test_whole_object_digest_mismatch_is_reported_first() -> None:
    data = build_bundle(sample_files())
    problems = scan(data, "0" * 64)
    assert problems[0].startswith("whole-object SHA-256 mismatch")


def test_flipped_byte_is_detected_without_an_expected_digest() -> None:
    data = bytearray(build_bundle([SourceFile("f", bytes(range(256)) * 64)]))
    data[len(data) // 2] ^= 0xFF
    problems = scan(bytes(data))
    assert problems, "a corrupted compressed stream must not pass"


def test_gzip_crc_mismatch_in_the_trailer_is_detected() -> None:
    data = bytearray(build_bundle(sample_files()))
    data[-8] ^= 0x01  # first byte of the CRC32 in the gzip trailer
    problems = scan(bytes(data))
    assert any("not a readable .tar.gz" in p for p in problems)


def test_truncated_bundle_is_not_readable() -> None:
    data = build_bundle(sample_files())
    problems = scan(data[: len(data) // 2])
    assert any("not a readable .tar.gz" in p for p in problems)


def test_not_gzip_at_all() -> None:
    assert any("not a readable .tar.gz" in p for p in scan(b"plain text, not a bundle"))


def test_member_bytes_differ_from_manifest() -> None:
    files = sample_files(2)
    honest = manifest_for(files, "b-1")
    lying = honest.model_copy(
        update={"files": [honest.files[0].model_copy(update={"sha256": "a" * 64}), honest.files[1]]}
    )
    problems = scan(build_bundle(files, manifest=lying))
    assert problems == [f"member {files[0].key!r}: sha256 {sha256_hex(files[0].body)} but the manifest says {'a' * 64}"]


def test_size_mismatch_is_reported() -> None:
    files = sample_files(1)
    honest = manifest_for(files, "b-1")
    wrong = honest.model_copy(update={"files": [honest.files[0].model_copy(update={"size": 1})]})
    assert any("size" in p and "manifest says 1" in p for p in scan(build_bundle(files, manifest=wrong)))


def test_member_missing_from_manifest_and_manifest_entry_without_member() -> None:
    files = sample_files(2)
    manifest = manifest_for([files[0], SourceFile("ghost", b"boo")], "b-1")
    problems = scan(build_bundle(files, manifest=manifest))
    assert "manifest lists 'ghost' (key 'ghost') but no such member exists" in problems
    assert f"member {files[1].key!r} is not listed in the manifest" in problems


def test_manifest_must_be_last() -> None:
    problems = scan(build_bundle(sample_files(2), manifest_first=True))
    assert any("manifest.json is not the last member (2 member(s) follow it)" in p for p in problems)


def test_missing_manifest() -> None:
    assert scan(build_bundle(sample_files(1), with_manifest=False)) == ["no manifest.json member"]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (b"not json", "manifest.json is invalid"),
        (
            json.dumps({"schema_version": 2, "bundle_id": "b", "created_at": "x", "files": []}).encode(),
            "schema_version",
        ),
        (
            json.dumps({"schema_version": 1, "bundle_id": "b", "created_at": "x"}).encode(),
            "files: Field required",
        ),
    ],
)
def test_invalid_manifest(manifest: bytes, expected: str) -> None:
    problems = scan(build_bundle([], manifest=manifest))
    assert len(problems) == 1
    assert expected in problems[0]


def test_duplicate_member_names() -> None:
    files = [SourceFile("same", b"1"), SourceFile("same", b"2")]
    problems = scan(build_bundle(files, manifest=manifest_for(files[:1], "b")))
    assert "member 'same': appears more than once" in problems


def _hostile(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"hostile-{kind}")
    info.type = {
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chardev": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
        "dir": tarfile.DIRTYPE,
    }[kind]
    info.linkname = "/etc/passwd" if kind in ("symlink", "hardlink") else ""
    return info


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("symlink", "symbolic link to '/etc/passwd'"),
        ("hardlink", "hard link to '/etc/passwd'"),
        ("chardev", "character device"),
        ("fifo", "FIFO"),
        ("dir", "directory"),
    ],
)
def test_non_regular_members_are_refused(kind: str, words: str) -> None:
    problems = scan(build_bundle(sample_files(1), extra=lambda tar: tar.addfile(_hostile(kind))))
    assert problems == [f"member 'hostile-{kind}': {words} is not allowed (regular files only)"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty name"),
        ("/etc/passwd", "absolute path"),
        ("../escape", "'..' segment (path traversal)"),
        ("a/../../escape", "'..' segment (path traversal)"),
        ("a/./b", "'.' segment"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("bell\x07", "control character in name"),
        ("new\nline", "control character in name"),
        ("bad\udcff", "not valid UTF-8"),
        ("x" * 256, "path segment longer than 255 bytes"),
    ],
)
def test_unsafe_member_names(name: str, reason: str) -> None:
    assert unsafe_member_reason(name) == reason


@pytest.mark.parametrize("name", ["a", "a/b/c.json", "with space/+plus%/ünï", "..hidden/x..y", "x" * 255])
def test_safe_member_names(name: str) -> None:
    assert unsafe_member_reason(name) is None


def test_traversal_member_is_reported_and_not_read() -> None:
    files = [SourceFile("../../escape", b"evil"), SourceFile("ok", b"fine")]
    report = scan_bundle(io.BytesIO(build_bundle(files)), source="t")
    assert "member '../../escape': unsafe name ('..' segment (path traversal))" in report.problems
    assert [m.name for m in report.members] == ["ok"]


def test_report_serialises_for_json_output() -> None:
    data = build_bundle(sample_files(1), "b-json")
    report = scan_bundle(io.BytesIO(data), source="t", expected_sha256=sha256_hex(data))
    payload = report.to_dict()
    assert payload["ok"] is True
    assert payload["bundle_id"] == "b-json"
    assert payload["files"] == 1
    json.dumps(payload)


def test_manifest_model_round_trip_is_what_the_checker_reads() -> None:
    manifest = manifest_for(sample_files(2), "b-rt")
    assert Manifest.model_validate_json(manifest.to_bytes()) == manifest


def _raw_tar_gz(*members: tuple[tarfile.TarInfo, bytes], pax_format: bool = True) -> bytes:
    raw = io.BytesIO()
    fmt = tarfile.PAX_FORMAT if pax_format else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=raw, mode="w:gz", format=fmt) as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    return raw.getvalue()


def test_a_member_under_the_manifest_name_is_rejected() -> None:
    files = [SourceFile("manifest.json/report.csv", b"a,b\n"), SourceFile("other.csv", b"x\n")]
    problems = scan(build_bundle(files))
    assert any("lies under manifest.json/" in p for p in problems), problems


@pytest.mark.parametrize(
    ("names", "words"),
    [
        (["a", "a/b"], "its directory 'a' is also a file member"),
        (["a/b", "a"], "is also a directory of another member"),
        (["x/y/z", "x/y"], "is also a directory of another member"),
    ],
)
def test_a_name_that_is_both_file_and_directory_is_rejected(names: list[str], words: str) -> None:
    problems = scan(build_bundle([SourceFile(n, b"1") for n in names]))
    assert any(words in p for p in problems), problems


def test_malformed_pax_sparse_map_is_a_rejection_not_a_crash() -> None:
    info = tarfile.TarInfo("sparse.bin")
    info.size = 4
    info.pax_headers = {"GNU.sparse.map": "abc", "GNU.sparse.major": "0", "GNU.sparse.minor": "1"}
    data = _raw_tar_gz((info, b"data"))
    report = scan_bundle(io.BytesIO(data), source="t")
    assert not report.ok
    assert any("not a readable .tar.gz" in p or "sparse" in p for p in report.problems), report.problems


def test_refused_member_declaring_an_absurd_size_stops_the_scan() -> None:
    """A PAX size of 10^20 on a link: skipping it would spin forever on the stream's end."""
    link = tarfile.TarInfo("evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    link.pax_headers = {"size": str(10**20)}
    data = _raw_tar_gz((link, b""))
    assert len(data) < 400
    report = scan_bundle(io.BytesIO(data), source="t", compressed_size=len(data))
    assert any("past the expansion limit" in p for p in report.problems), report.problems


def test_expansion_is_bounded_while_streaming() -> None:
    from data_aggregator.ops.bundles import ExpansionLimits

    zeros = SourceFile("zeros.bin", bytes(8 * 1024 * 1024))
    data = build_bundle([zeros])
    assert len(data) < 64 * 1024
    written = 0

    class Counter:
        def write(self, chunk: bytes) -> None:
            nonlocal written
            written += len(chunk)

        def close(self) -> None:
            pass

    limits = ExpansionLimits(max_ratio=10, max_bytes=1024**3, floor_bytes=0)
    report = scan_bundle(
        io.BytesIO(data), source="t", compressed_size=len(data), limits=limits, open_member=lambda _i: Counter()
    )
    assert any("expansion limit" in p for p in report.problems), report.problems
    assert written <= 10 * len(data)
    # The same bundle passes with the default limits (its floor covers small, compressible bundles).
    assert scan_bundle(io.BytesIO(data), source="t", compressed_size=len(data)).ok


def test_expansion_allowance_combines_ratio_floor_and_maximum() -> None:
    from data_aggregator.ops.bundles import ExpansionLimits

    limits = ExpansionLimits(max_ratio=100, max_bytes=10_000_000, floor_bytes=1_000)
    assert limits.allowance(5) == 1_000
    assert limits.allowance(50_000) == 5_000_000
    assert limits.allowance(1_000_000) == 10_000_000
    assert limits.allowance(None) == 10_000_000
    with pytest.raises(ValueError, match="positive"):
        ExpansionLimits(max_ratio=0)


def test_a_failing_sink_propagates_and_is_not_reported_as_a_bad_bundle() -> None:
    class Full:
        def write(self, _chunk: bytes) -> None:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    with pytest.raises(OSError, match="No space left"):
        scan_bundle(io.BytesIO(build_bundle(sample_files(1))), source="t", open_member=lambda _i: Full())
