"""Safe extraction: a hostile bundle must not write a single byte outside the target directory."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from data_aggregator.ops.bundles import MemberRefusedError, scan_bundle
from data_aggregator.ops.extract import SafeExtractor
from tests.bundle_factory import SourceFile, build_bundle, sample_files


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def raw_member(tar: tarfile.TarFile, name: str, body: bytes = b"evil", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    for attr, value in attrs.items():
        setattr(info, attr, value)
    tar.addfile(info, io.BytesIO(body) if info.isreg() else None)


def hostile_members(tar: tarfile.TarFile) -> None:
    raw_member(tar, "/abs/evil")
    raw_member(tar, "../evil")
    raw_member(tar, "ok/../../evil")
    raw_member(tar, "link", type=tarfile.SYMTYPE, linkname="../../outside", size=0)
    raw_member(tar, "link/evil")
    raw_member(tar, "hard", type=tarfile.LNKTYPE, linkname="/etc/passwd", size=0)
    raw_member(tar, "dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)


def test_path_traversal_bundle_writes_nothing_outside(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    target = sandbox / "target"
    target.mkdir(parents=True)
    before = all_files(tmp_path)
    files = [SourceFile("good/file.txt", b"good")]
    data = build_bundle(files, extra=hostile_members)

    report = scan_bundle(io.BytesIO(data), source="t", open_member=SafeExtractor(target, durable=False))

    assert not report.ok
    created = all_files(tmp_path) - before
    assert all(path.startswith("sandbox/target/") for path in created), created
    assert not any(p.is_symlink() or not (p.is_file() or p.is_dir()) for p in target.rglob("*"))
    assert (target / "good/file.txt").read_bytes() == b"good"
    # "link" was refused, so "link/evil" is an ordinary file in an ordinary directory inside the target
    assert (target / "link").is_dir()
    joined = "\n".join(report.problems)
    for name in ("/abs/evil", "../evil", "ok/../../evil", "link", "hard", "dev"):
        assert f"member {name!r}" in joined
    assert not (tmp_path / "outside").exists()
    assert not (sandbox / "evil").exists()


def test_tar_cli_style_extraction_is_not_used(tmp_path: Path) -> None:
    """The extractor writes members itself; the member's mode and owner are never applied."""
    info = tarfile.TarInfo("setuid")
    info.mode = 0o4777
    extractor = SafeExtractor(tmp_path, durable=True)
    sink = extractor(info)
    sink.write(b"x")
    sink.close()
    assert (tmp_path / "setuid").stat().st_mode & 0o7777 == 0o644


def test_planted_symlink_inside_target_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, target / "dir")
    os.symlink(outside / "victim", target / "file")
    (target / "real").write_bytes(b"original")
    os.symlink(target / "real", target / "inner")  # resolves inside: only O_NOFOLLOW/O_EXCL stop it
    extractor = SafeExtractor(target, durable=False)
    with pytest.raises(MemberRefusedError, match="outside the destination"):
        extractor(tarfile.TarInfo("dir/evil"))
    with pytest.raises(MemberRefusedError, match="outside the destination"):
        extractor(tarfile.TarInfo("file"))
    with pytest.raises(MemberRefusedError, match="already extracted"):
        extractor(tarfile.TarInfo("inner"))
    (target / "realdir").mkdir()
    os.symlink(target / "realdir", target / "alias")
    with pytest.raises(MemberRefusedError, match="alias is a symbolic link"):
        extractor(tarfile.TarInfo("alias/x"))
    assert list(outside.iterdir()) == []
    assert (target / "real").read_bytes() == b"original"


def test_file_and_directory_of_the_same_name_conflict(tmp_path: Path) -> None:
    files = [SourceFile("a", b"file"), SourceFile("a/b", b"nested")]
    report = scan_bundle(
        io.BytesIO(build_bundle(files)), source="t", open_member=SafeExtractor(tmp_path / "t", durable=False)
    )
    assert report.problems == [
        "member 'a/b': its directory 'a' is also a file member",
        "manifest lists 'a/b' (key 'a/b') but no such member exists",
    ]


def test_good_bundle_extracts_every_file(tmp_path: Path) -> None:
    files = [*sample_files(3), SourceFile("deep/ünï/日本.txt", "ünï".encode())]
    extractor = SafeExtractor(tmp_path / "out")
    report = scan_bundle(io.BytesIO(build_bundle(files)), source="t", open_member=extractor)
    assert report.ok, report.problems
    for f in files:
        assert (tmp_path / "out" / f.key).read_bytes() == f.body
    assert set(extractor.written) == {f.key for f in files}
