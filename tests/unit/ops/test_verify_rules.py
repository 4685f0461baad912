"""Object-level checks of ``verify`` that moto cannot produce (a wrong or composite S3 checksum)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from data_aggregator.ops.bundles import scan_bundle
from data_aggregator.ops.hashing import hex_to_b64
from data_aggregator.ops.verify import _object_problems, expected_digest_problem, verify_local_bundle
from tests.bundle_factory import build_bundle, sample_files, sha256_hex


def checked(checksum: str) -> tuple[list[str], list[str]]:
    data = build_bundle(sample_files(), "b-1")
    report = scan_bundle(io.BytesIO(data), source="t", expected_sha256=sha256_hex(data))
    response: Any = {
        "ContentType": "application/gzip",
        "ContentLength": len(data),
        "ChecksumSHA256": checksum,
    }
    return _object_problems(response, report, "bundles/2026/11/22/14/b-1.tar.gz"), report.notes


def test_matching_s3_checksum_is_noted() -> None:
    data = build_bundle(sample_files(), "b-1")
    problems, notes = checked(hex_to_b64(sha256_hex(data)))
    assert problems == []
    assert notes == ["S3 ChecksumSHA256 matches the bytes"]


def test_wrong_s3_checksum_is_a_problem() -> None:
    problems, _ = checked(hex_to_b64("1" * 64))
    assert len(problems) == 1
    assert problems[0].startswith(f"S3 ChecksumSHA256 {'1' * 64} differs")


def test_composite_checksum_is_not_compared() -> None:
    problems, notes = checked(hex_to_b64("1" * 64) + "-4")
    assert problems == []
    assert notes == ["S3 ChecksumSHA256 is a multipart composite; not comparable"]


def test_truncated_download_is_a_problem() -> None:
    data = build_bundle(sample_files(), "b-1")
    report = scan_bundle(io.BytesIO(data), source="t")
    response: Any = {"ContentType": "application/gzip", "ContentLength": len(data) + 10}
    assert _object_problems(response, report, "b-1.tar.gz") == [
        f"read {len(data):,} bytes but the object is {len(data) + 10:,} bytes"
    ]


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({}, "no 'content-sha256' metadata on the object"),
        ({"content-sha256": "ABC"}, "'content-sha256' metadata is not 64 hex digits: 'ABC'"),
    ],
)
def test_expected_digest_from_metadata(metadata: dict[str, str], problem: str) -> None:
    assert expected_digest_problem(metadata) == (None, problem)


def test_local_file_with_sidecar_and_without(tmp_path: Path) -> None:
    data = build_bundle(sample_files(), "b-1")
    path = tmp_path / "b-1.tar.gz"
    path.write_bytes(data)
    unchecked = verify_local_bundle(path)
    assert unchecked.ok
    assert any("not checked" in note for note in unchecked.notes)
    (tmp_path / "b-1.tar.gz.sha256").write_text(f"{'2' * 64}  b-1.tar.gz\n")
    assert verify_local_bundle(path).problems[0].startswith("whole-object SHA-256 mismatch")
    (tmp_path / "b-1.tar.gz.sha256").write_text("garbage\n")
    with pytest.raises(ValueError, match=r"b-1\.tar\.gz\.sha256: does not start with a hex SHA-256"):
        verify_local_bundle(path)
    with pytest.raises(ValueError, match="64 hex digits"):
        verify_local_bundle(path, "xyz")
    assert verify_local_bundle(tmp_path / "absent.tar.gz").problems == ["no such file"]


def test_digests_are_accepted_in_either_case(tmp_path: Path) -> None:
    data = build_bundle(sample_files(), "b-1")
    path = tmp_path / "b-1.tar.gz"
    path.write_bytes(data)
    upper = hashlib.sha256(data).hexdigest().upper()
    assert verify_local_bundle(path, upper).ok
    (tmp_path / "b-1.tar.gz.sha256").write_text(f"{upper}  b-1.tar.gz\n")
    assert verify_local_bundle(path).ok
    assert expected_digest_problem({"content-sha256": upper}) == (upper.lower(), None)


def test_a_directory_is_a_usage_mistake_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a directory"):
        verify_local_bundle(tmp_path)
