"""The work a bundle can cause beyond its bytes is bounded: deep names, big extended headers, many members.

Each of these costs little to send and, unbounded, much to scan: a 251-byte bundle whose member name
has 40,000 segments took a minute and 1.5 GB, 16 KB of gzip holding a GNU sparse map took 456 MB,
300,000 empty members in 1.86 MB took 200 MB. Time is not asserted (no clocks in tests); the work is
measured as the peak of traced allocations during the scan, or as a count of live objects. An honest
scan's peak is about one read chunk (1 MiB).
"""

from __future__ import annotations

import gc
import gzip
import io
import tarfile
import tracemalloc
from collections.abc import Callable

import annotated_types
import pytest

from data_aggregator.config import Settings
from data_aggregator.naming import assign_member_names
from data_aggregator.ops.bundles import (
    DEFAULT_LIMITS,
    MAX_PROBLEMS_LISTED,
    BundleReport,
    ExpansionLimits,
    scan_bundle,
    unsafe_member_reason,
)
from tests.bundle_factory import SourceFile, build_bundle, sha256_hex

PEAK_BYTES = 4 * 1024 * 1024


def _tar_gz(build: Callable[[tarfile.TarFile], None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=fmt) as tar:
        build(tar)
    return raw.getvalue()


def _empty_members(names: list[str]) -> bytes:
    def build(tar: tarfile.TarFile) -> None:
        for name in names:
            tar.addfile(tarfile.TarInfo(name))

    return _tar_gz(build)


def _scan(data: bytes, limits: ExpansionLimits = DEFAULT_LIMITS) -> tuple[BundleReport, int]:
    """Scan a bundle; return its report and the peak of memory allocated meanwhile."""
    tracemalloc.start()
    try:
        report = scan_bundle(io.BytesIO(data), source="t", compressed_size=len(data), limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak


# --- 1. deep and long names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/".join(["x" * 240] * 17), None),  # 4,096 bytes
        ("/".join(["x" * 240] * 16 + ["x" * 241]), "name longer than 4,096 bytes"),
        ("/".join(["é" * 120] * 17), None),  # 4,096 bytes in 2,056 characters
        ("/".join(["é" * 120] * 16 + ["é" * 120 + "x"]), "name longer than 4,096 bytes"),
        ("a/" * 1023 + "f", None),
        ("a/" * 1024 + "f", "name has 1,025 path segments, more than 1,024"),
    ],
)
def test_names_are_bounded_in_bytes_and_segments(name: str, reason: str | None) -> None:
    assert unsafe_member_reason(name) == reason


def test_the_writers_longest_and_deepest_names_are_within_the_bounds() -> None:
    """A 1024-byte key of control characters triples when escaped, plus a tag when names collide."""
    escaped = "/".join(["\x01" * 84] * 12)  # 1,019 bytes
    deep = "a/" * 511 + "a"  # 1,023 bytes, 512 segments
    names = assign_member_names([(escaped, "0" * 64), (escaped, "1" * 64), (deep, "2" * 64), (deep, "3" * 64)])
    assert max(len(name.encode()) for name in names) > 3000
    assert [unsafe_member_reason(name) for name in names] == [None] * 4


def test_a_deep_name_is_refused_before_its_directories_are_built() -> None:
    """Was 10.3 MB for this 152-byte bundle (every parent prefix, twice), and a minute at 40,000 segments."""
    report, peak = _scan(_empty_members(["a/" * 3000 + "f"]))
    assert peak < PEAK_BYTES, peak
    [refusal] = [p for p in report.problems if "unsafe name" in p]
    assert "name longer than 4,096 bytes" in refusal
    assert len(refusal) < 400  # the name is cut in the report


def test_names_at_the_depth_bound_cost_memory_linear_in_their_length() -> None:
    """Twelve names of 1,002 segments: was ~27 MB of prefix strings, now one tree node per segment."""
    report, peak = _scan(_empty_members([f"{i}/" + "a/" * 1000 + "f" for i in range(12)]))
    assert peak < PEAK_BYTES, peak
    assert report.problems == ["no manifest.json member"]


# --- 2. extended headers ----------------------------------------------------------------------------


def _pax(headers: dict[str, str], name: str = "big") -> Callable[[tarfile.TarFile], None]:
    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.pax_headers = headers
        tar.addfile(info)

    return build


def _gnu_long(*, link: bool) -> Callable[[tarfile.TarFile], None]:
    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("l" if link else "n" * 100_000)
        if link:
            info.type = tarfile.SYMTYPE
            info.linkname = "t" * 100_000
        tar.addfile(info)

    return build


@pytest.mark.parametrize(
    ("build", "fmt", "words"),
    [
        (_pax({"GNU.sparse.map": ("1," * 512 * 1024)[:-1]}), tarfile.PAX_FORMAT, "PAX extended header"),
        (_pax({"path": "p" * 100_000}), tarfile.PAX_FORMAT, "PAX extended header"),
        (_pax({"comment": "c" * 100_000}), tarfile.PAX_FORMAT, "PAX extended header"),
        (_gnu_long(link=False), tarfile.GNU_FORMAT, "GNU long name header"),
        (_gnu_long(link=True), tarfile.GNU_FORMAT, "GNU long link header"),
    ],
    ids=["pax-sparse-map-1MiB", "pax-path", "pax-comment", "gnu-longname", "gnu-longlink"],
)
def test_an_oversized_extended_header_is_refused_unread(
    build: Callable[[tarfile.TarFile], None], fmt: int, words: str
) -> None:
    """The 1 MiB sparse map (1.2 KB of gzip) cost 30 MB before; 16 MiB of it cost 456 MB."""
    report, peak = _scan(_tar_gz(build, fmt))
    assert peak < PEAK_BYTES, peak
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"not a readable .tar.gz: refused {words} at offset 0 declares ")
    assert report.problems[0].endswith("bytes, above the 65,536 allowed")


def _pax_record(keyword: str, value: str) -> bytes:
    body = f" {keyword}={value}\n".encode()
    length = len(body) + len(str(len(body) + 2))
    return str(length).encode() + body


def _extended_header(kind: bytes, records: list[bytes]) -> bytes:
    data = b"".join(records)
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = kind
    header.size = len(data)
    return header.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


def test_global_headers_are_refused() -> None:
    """Each global header's keys pile up in one dictionary that tarfile copies for every later member:
    100 of them (60 KB of small keys each, 2.9 MB of gzip) cost 103 MB before."""
    globals_ = b"".join(
        _extended_header(tarfile.XGLTYPE, [_pax_record(f"k{j}.{i}", "") for i in range(5000)]) for j in range(3)
    )
    member = tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT)
    report, peak = _scan(gzip.compress(globals_ + member + bytes(1024)))
    assert peak < PEAK_BYTES, peak
    assert report.problems == [
        "not a readable .tar.gz: refused PAX extended header at offset 0: global headers are never written"
    ]


@pytest.mark.parametrize(
    "chain",
    [
        [tarfile.XHDTYPE, tarfile.XHDTYPE],
        [tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_LONGNAME],
        [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME],
    ],
    ids=["pax-pax", "gnu-link-name", "pax-gnu"],
)
def test_a_chain_of_extended_headers_is_refused(chain: list[bytes]) -> None:
    """tarfile recurses into the next header from inside each one, keeping every level alive."""
    headers = b"".join(_extended_header(kind, [_pax_record("comment", "x")]) for kind in chain)
    member = tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT)
    report, _ = _scan(gzip.compress(headers + member + bytes(1024)))
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith("not a readable .tar.gz: refused ")
    assert report.problems[0].endswith(
        "header at offset 1,024 follows another extended header (at most one per member)"
    )


def _gnu_sparse_member(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("holes.bin")
    info.type = tarfile.GNUTYPE_SPARSE
    tar.addfile(info)


@pytest.mark.parametrize(
    ("build", "fmt"),
    [
        (_pax({"GNU.sparse.map": "0,4", "GNU.sparse.major": "0", "GNU.sparse.minor": "1"}), tarfile.PAX_FORMAT),
        (_pax({"GNU.sparse.size": "4", "GNU.sparse.offset": "0", "GNU.sparse.numbytes": "4"}), tarfile.PAX_FORMAT),
        (_pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}), tarfile.PAX_FORMAT),
        (_pax({"GNU.sparse.name": "renamed.bin"}), tarfile.PAX_FORMAT),
        (_pax({"GNU.sparse.realsize": "1000000"}), tarfile.PAX_FORMAT),
        (_gnu_sparse_member, tarfile.GNU_FORMAT),
    ],
    ids=["pax-0.1", "pax-0.0", "pax-1.0", "pax-name", "pax-realsize", "gnu-type-S"],
)
def test_gnu_sparse_data_in_any_form_is_refused(build: Callable[[tarfile.TarFile], None], fmt: int) -> None:
    """The writer never makes sparse files; the 1.0 form would read its map from the member's data."""
    report, _ = _scan(_tar_gz(build, fmt))
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith("not a readable .tar.gz: refused GNU")
    assert report.problems[0].endswith("(sparse files are never bundled)")


def test_the_writers_largest_pax_header_is_read() -> None:
    files = [SourceFile("/".join(["ü" * 120] * 17), b"x"), SourceFile("a/" * 1023 + "f", b"y")]
    data = build_bundle(files)
    report = scan_bundle(io.BytesIO(data), source="t", expected_sha256=sha256_hex(data))
    assert report.ok, report.problems


# --- 3. many members --------------------------------------------------------------------------------


def test_the_default_member_cap_admits_the_largest_bundle_the_writer_makes() -> None:
    [most_files] = [
        m.le for m in Settings.model_fields["max_files_per_bundle"].metadata if isinstance(m, annotated_types.Le)
    ]
    assert isinstance(most_files, int)
    assert DEFAULT_LIMITS.max_members > most_files  # files and the manifest


def test_members_past_the_cap_are_not_read() -> None:
    data = _empty_members([f"m{i}" for i in range(3000)])
    report, _ = _scan(data, ExpansionLimits(max_members=1000))
    assert "the bundle has more than 1,000 members (the most a bundle may hold); the rest was not read" in (
        report.problems
    )
    assert len(report.members) == 1000
    assert report.object_size == len(data)  # still hashed to the end


def test_the_tar_reader_keeps_no_object_per_member() -> None:
    """A TarFile in "r|" mode kept every TarInfo: 3,000 of them alive at the last member."""
    names = [f"m{i}" for i in range(3000)]
    live: list[int] = []

    def count_at_last(info: tarfile.TarInfo) -> None:
        if info.name == names[-1]:
            # type(), not isinstance(): isinstance() dereferences any weakref.proxy another
            # test left in the heap, and a dead one raises ReferenceError.
            live.append(sum(type(obj) is tarfile.TarInfo for obj in gc.get_objects()))

    scan_bundle(io.BytesIO(_empty_members(names)), source="t", open_member=count_at_last)
    assert len(live) == 1
    assert live[0] < 10, live


def test_problems_past_the_listed_bound_are_counted_not_kept() -> None:
    report = scan_bundle(io.BytesIO(_empty_members(["dup"] * 2000)), source="t")
    assert len(report.problems) == MAX_PROBLEMS_LISTED + 1  # and "no manifest.json member"
    assert report.problems_not_listed == 1999 - MAX_PROBLEMS_LISTED
    rendered = report.render()
    assert "FAILED (2000 problem(s))" in rendered
    assert f"... and {2000 - MAX_PROBLEMS_LISTED} more" in rendered
    assert report.to_dict()["problems_not_listed"] == 1999 - MAX_PROBLEMS_LISTED
