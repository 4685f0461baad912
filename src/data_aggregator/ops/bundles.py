"""Read a bundle once, as a stream, and check it against the contract and its own manifest.

One pass serves both ``verify`` (hash only) and ``consume`` (hash while writing each member through a
caller-supplied opener), so what the consumer extracts is exactly what was verified: there is no
window between checking a bundle and unpacking it in which the bytes could differ.

The checker is deliberately independent of the code that writes bundles: it re-derives every rule
from the public contract (SPEC §3) so that it catches a writer bug instead of sharing it.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import unicodedata
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, cast

from pydantic import ValidationError

from data_aggregator.models import MANIFEST_MEMBER, Manifest
from data_aggregator.ops.hashing import CHUNK_BYTES, HashingReader, Readable

MAX_SEGMENT_BYTES = 255
MAX_NAME_BYTES = 4096
"""PATH_MAX on Linux. The writer's longest name is a 1024-byte S3 key with every byte escaped to ``%XX``
(at most 3,072 bytes) plus a ``~tag`` of a few bytes, so a longer name cannot be ours; checking this first keeps every
later per-name pass cheap."""
MAX_NAME_SEGMENTS = 1024
"""Twice the most segments the writer can produce (a 1024-byte key ``a/a/.../a`` has 512): a generous
bound, yet one that stops a name of thousands of tiny segments before its directories are recorded."""
MAX_EXTENDED_HEADER_BYTES = 64 * 1024
"""Largest PAX or GNU long-name record read into memory: the writer's largest is a name of at most
``MAX_NAME_BYTES`` plus a few short keywords."""
MAX_MEMBERS = 100_100
"""Default bound on a bundle's members: the writer puts at most ``MAX_FILES_PER_BUNDLE`` (100,000 at
most, see ``config.py``) files and one manifest in a bundle; the rest is margin."""
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_PROBLEMS_LISTED = 50
MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True, slots=True)
class ExpansionLimits:
    """How many bytes (and members) a bundle may expand to, checked while its tar stream is read.

    ``max_members`` bounds the number of tar headers: each costs parsing and bookkeeping however few
    bytes it takes, so 300,000 empty members fit in under 2 MB of gzip. The byte allowance is
    ``max_ratio`` times the compressed size, but never less than ``floor_bytes`` (so a
    small bundle of very compressible files still passes) and never more than ``max_bytes``. The tar
    stream (headers, padding and member data) is counted as it is decompressed, so a bomb is stopped
    before it writes more than the allowance, and no header can make the scan seek past it.
    """

    max_ratio: float = 200.0
    max_bytes: int = 8 * GIB
    floor_bytes: int = 64 * MIB
    max_members: int = MAX_MEMBERS

    def __post_init__(self) -> None:
        if self.max_ratio <= 0 or self.max_bytes <= 0 or self.floor_bytes < 0 or self.max_members <= 0:
            raise ValueError("expansion limits must be positive")

    def allowance(self, compressed_size: int | None) -> int:
        """Bytes the tar stream may hold for a bundle of this compressed size (unknown: the maximum)."""
        if compressed_size is None:
            return self.max_bytes
        by_ratio = int(compressed_size * self.max_ratio)
        return min(self.max_bytes, max(by_ratio, self.floor_bytes))


DEFAULT_LIMITS = ExpansionLimits()


class ExpansionLimitError(Exception):
    """The decompressed stream grew past its allowance; the bundle is rejected, nothing more is read."""


class ExtendedHeaderError(Exception):
    """An extended tar header is larger than the writer ever makes, or of a kind it never writes."""


_IN_EXTENDED_HEADER: ContextVar[bool] = ContextVar("_IN_EXTENDED_HEADER", default=False)
"""Set while tarfile reads the member an extended header applies to (it recurses for each one)."""


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized extended headers and any GNU sparse data before parsing them.

    ``tarfile`` reads a PAX or GNU long-name header's whole declared data into memory and parses it
    (a GNU sparse map into a list of ints) while it looks for the next member, before the scan sees
    any header: 16 MiB of ``GNU.sparse.map=1,1,...`` gzips to 16 KB and costs ~450 MB. No public API
    bounds this, so the private ``_proc_*`` hooks (the extension points the stdlib's own comments
    describe for subclasses) are wrapped: each checks the declared size, then defers to the stdlib.
    The writer never produces sparse files, so every GNU sparse form is refused outright.

    The writer also puts at most one extended header (a PAX ``x``) before a member and never a global
    one. tarfile reads the next header recursively from inside each extended one, keeping every
    level's data and parsed keys alive, and merges global headers into a dictionary it copies for
    every later member: so a chain of extended headers, or any global header, is refused too.
    """

    def _extended(
        self, kind: str, archive: tarfile.TarFile, process: Callable[[tarfile.TarFile], tarfile.TarInfo]
    ) -> tarfile.TarInfo:
        where = f"{kind} header at offset {self.offset:,}"
        if self.size > MAX_EXTENDED_HEADER_BYTES:
            raise ExtendedHeaderError(
                f"{where} declares {self.size:,} bytes, above the {MAX_EXTENDED_HEADER_BYTES:,} allowed"
            )
        if self.type == tarfile.XGLTYPE:
            raise ExtendedHeaderError(f"{where}: global headers are never written")
        if _IN_EXTENDED_HEADER.get():
            raise ExtendedHeaderError(f"{where} follows another extended header (at most one per member)")
        token = _IN_EXTENDED_HEADER.set(True)
        try:
            return process(archive)
        finally:
            _IN_EXTENDED_HEADER.reset(token)

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        return self._extended("PAX extended", archive, cast("Any", super())._proc_pax)

    def _proc_gnulong(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        kind = "GNU long link" if self.type == tarfile.GNUTYPE_LONGLINK else "GNU long name"
        return self._extended(kind, archive, cast("Any", super())._proc_gnulong)

    def _proc_sparse(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        raise ExtendedHeaderError(f"GNU sparse member at offset {self.offset:,} (sparse files are never bundled)")

    def _refuse_sparse_keys(self, *_: object) -> None:
        raise ExtendedHeaderError(
            f"GNU.sparse.* keys in the PAX header at offset {self.offset:,} (sparse files are never bundled)"
        )

    # Called by ``_proc_pax`` when it finds GNU.sparse.* keys, before they are parsed or any sparse
    # map is read from the member's data.
    _proc_gnusparse_00 = _refuse_sparse_keys
    _proc_gnusparse_01 = _refuse_sparse_keys
    _proc_gnusparse_10 = _refuse_sparse_keys

    def _apply_pax_info(self, pax_headers: dict[str, str], encoding: str, errors: str) -> None:
        # The sparse keys that need no sparse map (GNU.sparse.name, .size, .realsize) land here.
        if any(keyword.startswith("GNU.sparse.") for keyword in pax_headers):
            raise ExtendedHeaderError(
                f"GNU.sparse.* keys in the PAX headers of member {_shown(self.name)} (sparse files are never bundled)"
            )
        cast("Any", super())._apply_pax_info(pax_headers, encoding, errors)


class _Passthrough(Exception):
    """Carries an error of the source stream or a member sink through the parser unchanged.

    Those errors (a network failure, a full disk) say nothing about the bundle, so they must not be
    mistaken for a malformed archive, which is how every other exception in the scan is reported.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class _GuardedSource:
    """The raw bundle stream, with its read errors marked as not the bundle's fault."""

    def __init__(self, source: Readable) -> None:
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._source.read(size)
        except Exception as exc:
            raise _Passthrough(exc) from exc


class _LimitedStream:
    """The decompressed tar stream, counted; raises once it passes the allowance."""

    def __init__(self, source: Readable, allowance: int) -> None:
        self._source = source
        self.allowance = allowance
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        wanted = CHUNK_BYTES if size is None or size < 0 else size
        chunk = self._source.read(min(wanted, self.allowance - self.bytes_read + 1))
        self.bytes_read += len(chunk)
        if self.bytes_read > self.allowance:
            raise ExpansionLimitError(
                f"the bundle expands past {self.allowance:,} bytes (the expansion limit for its compressed size)"
            )
        return chunk


class MemberSink(Protocol):
    """Where one member's bytes go while they are hashed (a file being extracted)."""

    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


MemberOpener = Callable[[tarfile.TarInfo], MemberSink | None]
"""Given a safe regular-file member, return a sink for its bytes (or None to only hash it)."""


class MemberRefusedError(Exception):
    """Raised by a :data:`MemberOpener` that will not accept a member; reported as a bundle problem."""


@dataclass(frozen=True, slots=True)
class MemberDigest:
    """What a member actually contained, measured while reading it."""

    name: str
    size: int
    sha256: str


@dataclass(slots=True)
class BundleReport:
    """Everything learned about one bundle; ``ok`` is False as soon as any problem was found."""

    source: str
    expected_sha256: str | None = None
    object_sha256: str | None = None
    object_size: int = 0
    manifest: Manifest | None = None
    members: list[MemberDigest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problems_not_listed: int = 0
    """Further per-member problems, counted but not kept once ``MAX_PROBLEMS_LISTED`` are listed."""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems

    def render(self, *, verbose: bool = False) -> str:
        """A report an operator can read at a glance; problems are listed, never summarised away."""
        lines = [f"bundle   {self.source}", f"  size     {self.object_size:,} bytes"]
        if self.object_sha256 is not None:
            if self.expected_sha256 is None:
                verdict = "not checked: no expected value"
            elif self.expected_sha256 == self.object_sha256:
                verdict = "matches the expected value"
            else:
                verdict = f"MISMATCH: expected {self.expected_sha256}"
            lines.append(f"  sha256   {self.object_sha256} ({verdict})")
        if self.manifest is not None:
            lines.append(
                f"  manifest bundle_id={self.manifest.bundle_id} created_at={self.manifest.created_at} "
                f"files={len(self.manifest.files)}"
            )
        lines.append(f"  members  {len(self.members)} read and hashed")
        if verbose:
            lines.extend(f"    {m.sha256}  {m.size:>12,}  {m.name}" for m in self.members)
        lines.extend(f"  note     {note}" for note in self.notes)
        if self.ok:
            lines.append("  result   OK")
        else:
            total = len(self.problems) + self.problems_not_listed
            lines.append(f"  result   FAILED ({total} problem(s))")
            lines.extend(f"  - {problem}" for problem in self.problems[:MAX_PROBLEMS_LISTED])
            if total > MAX_PROBLEMS_LISTED:
                lines.append(f"  - ... and {total - MAX_PROBLEMS_LISTED} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form for ``--json``."""
        return {
            "source": self.source,
            "ok": self.ok,
            "size": self.object_size,
            "sha256": self.object_sha256,
            "expected_sha256": self.expected_sha256,
            "bundle_id": self.manifest.bundle_id if self.manifest else None,
            "files": len(self.manifest.files) if self.manifest else None,
            "members": [{"name": m.name, "size": m.size, "sha256": m.sha256} for m in self.members],
            "problems": list(self.problems),
            "problems_not_listed": self.problems_not_listed,
            "notes": list(self.notes),
        }


def _segment_reason(segment: str) -> str | None:
    if segment == "..":
        return "'..' segment (path traversal)"
    if segment == ".":
        return "'.' segment"
    if not segment:
        return "empty path segment"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"path segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def unsafe_member_reason(name: str) -> str | None:
    """Why a tar member name may not be extracted as-is, or None when it is a safe relative path.

    Mirrors the contract for member names: relative, no empty, ``.`` or ``..`` segments, no control
    characters, valid UTF-8, and segments short enough for common filesystems. The length and depth
    bounds come first, so that no later check (nor the scan's directory bookkeeping) does more than
    linear work on a name of hostile size.
    """
    if len(name) > MAX_NAME_BYTES or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES:,} bytes"
    if name.count("/") >= MAX_NAME_SEGMENTS:
        return f"name has {name.count('/') + 1:,} path segments, more than {MAX_NAME_SEGMENTS:,}"
    whole_name_checks: tuple[tuple[bool, str], ...] = (
        (not name, "empty name"),
        (any(0xD800 <= ord(ch) <= 0xDFFF for ch in name), "not valid UTF-8"),
        (any(unicodedata.category(ch) == "Cc" for ch in name), "control character in name"),
        (name.startswith("/"), "absolute path"),
    )
    for failed, reason in whole_name_checks:
        if failed:
            return reason
    for segment in name.split("/"):
        segment_reason = _segment_reason(segment)
        if segment_reason is not None:
            return segment_reason
    return None


_KINDS = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.DIRTYPE: "directory",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}


def _shown(name: str, limit: int = 200) -> str:
    """A name as a report shows it: cut when longer than any safe name, so one problem stays one line."""
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}... ({len(name):,} characters)"


def _kind(info: tarfile.TarInfo) -> str:
    kind = _KINDS.get(info.type, f"tar type {info.type!r}")
    return f"{kind} to {_shown(info.linkname)}" if info.issym() or info.islnk() else kind


class _Scan:
    """State of one pass over a bundle's members."""

    def __init__(self, report: BundleReport, open_member: MemberOpener | None, allowance: int) -> None:
        self.report = report
        self.open_member = open_member
        self.allowance = allowance
        self.digests: dict[str, MemberDigest] = {}
        self.manifest_bytes: bytes | None = None
        self.members_after_manifest = 0
        # The members' paths as a tree, so that recording a name of n segments costs O(n), where a set
        # of every parent prefix would cost O(n^2): directories map (parent id, segment) to their own
        # id (the root is 0), files are (parent id, last segment).
        self.directories: dict[tuple[int, str], int] = {}
        self.files: set[tuple[int, str]] = set()

    def problem(self, text: str) -> None:
        """Record a per-member problem; past ``MAX_PROBLEMS_LISTED`` only count it (a bundle of many bad
        members would otherwise hold one long message per member)."""
        if len(self.report.problems) < MAX_PROBLEMS_LISTED:
            self.report.problems.append(text)
        else:
            self.report.problems_not_listed += 1

    def beyond_limit(self, info: tarfile.TarInfo) -> str | None:
        """Why the scan must stop at this header: its declared size runs past the allowance.

        Checked before anything is read or skipped, because skipping a member in a stream means
        reading its declared size, and a header may declare 10^20 bytes over a 150-byte file.
        """
        if info.size < 0 or info.offset_data + info.size > self.allowance:
            return (
                f"member {info.name!r} declares {info.size:,} bytes, past the expansion limit of "
                f"{self.allowance:,} bytes for this bundle; the rest was not read"
            )
        return None

    def layout_conflict(self, name: str) -> str | None:
        """Why a name cannot coexist with the members before it on a filesystem, or None.

        ``a`` and ``a/b`` in one bundle need ``a`` to be a file and a directory at once: ``tar xzf``
        fails on it, and so would any extraction. The manifest's name is reserved the same way.
        """
        segments = name.split("/")
        if len(segments) > 1 and segments[0] == MANIFEST_MEMBER:
            return f"member {name!r}: lies under {MANIFEST_MEMBER}/, which must be a file"
        node = 0
        for depth, segment in enumerate(segments[:-1]):
            if (node, segment) in self.files:
                clash = "/".join(segments[: depth + 1])
                return f"member {name!r}: its directory {clash!r} is also a file member"
            child = self.directories.get((node, segment))
            if child is None:
                return None  # a directory no member has used yet: nothing lies below it
            node = child
        if (node, segments[-1]) in self.directories:
            return f"member {name!r}: is also a directory of another member"
        return None

    def record_layout(self, name: str) -> None:
        """Add an accepted member's path to the tree ``layout_conflict`` checks later names against."""
        segments = name.split("/")
        node = 0
        for segment in segments[:-1]:
            node = self.directories.setdefault((node, segment), len(self.directories) + 1)
        self.files.add((node, segments[-1]))

    def refusal(self, info: tarfile.TarInfo) -> str | None:
        """Why this member is not read at all, or None."""
        name = info.name
        if not info.isreg() or info.issparse():
            return f"member {_shown(name)}: {_kind(info)} is not allowed (regular files only)"
        reason = unsafe_member_reason(name)
        if reason is not None:
            return f"member {_shown(name)}: unsafe name ({reason})"
        if name in self.digests or (name == MANIFEST_MEMBER and self.manifest_bytes is not None):
            return f"member {name!r}: appears more than once"
        if name == MANIFEST_MEMBER and info.size > MAX_MANIFEST_BYTES:
            return f"{MANIFEST_MEMBER} is {info.size:,} bytes, above {MAX_MANIFEST_BYTES:,}"
        return self.layout_conflict(name)

    def member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        name = info.name
        if self.manifest_bytes is not None:
            self.members_after_manifest += 1
        refusal = self.refusal(info)
        if refusal is not None:
            self.problem(refusal)
            return
        self.record_layout(name)
        source = tar.extractfile(info)
        if source is None:  # pragma: no cover - isreg() members always have a file object
            self.problem(f"member {name!r}: no data")
            return
        if name == MANIFEST_MEMBER:
            self.manifest_bytes = source.read()
            return
        try:
            sink = self.open_member(info) if self.open_member is not None else None
        except MemberRefusedError as exc:
            self.problem(f"member {name!r}: refused: {exc}")
            return
        except Exception as exc:
            raise _Passthrough(exc) from exc
        digest = hashlib.sha256()
        size = 0
        try:
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    _write(sink, chunk)
        finally:
            if sink is not None:
                _close(sink)
        record = MemberDigest(name, size, digest.hexdigest())
        self.digests[name] = record
        self.report.members.append(record)

    def finish(self) -> None:
        problems = self.report.problems
        if self.manifest_bytes is None:
            problems.append(f"no {MANIFEST_MEMBER} member")
            return
        if self.members_after_manifest:
            problems.append(
                f"{MANIFEST_MEMBER} is not the last member ({self.members_after_manifest} member(s) follow it)"
            )
        try:
            manifest = Manifest.model_validate_json(self.manifest_bytes)
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}" for err in exc.errors()
            )
            problems.append(f"{MANIFEST_MEMBER} is invalid: {details}")
            return
        self.report.manifest = manifest
        listed: set[str] = set()
        for entry in manifest.files:
            if entry.member in listed:
                self.problem(f"manifest lists member {entry.member!r} more than once")
                continue
            listed.add(entry.member)
            actual = self.digests.get(entry.member)
            if actual is None:
                self.problem(f"manifest lists {entry.member!r} (key {entry.key!r}) but no such member exists")
                continue
            if actual.size != entry.size:
                self.problem(f"member {entry.member!r}: size {actual.size:,} but the manifest says {entry.size:,}")
            if actual.sha256 != entry.sha256:
                self.problem(f"member {entry.member!r}: sha256 {actual.sha256} but the manifest says {entry.sha256}")
        for name in self.digests:
            if name not in listed:
                self.problem(f"member {name!r} is not listed in the manifest")


def _write(sink: MemberSink, chunk: bytes) -> None:
    try:
        sink.write(chunk)
    except Exception as exc:
        raise _Passthrough(exc) from exc


def _close(sink: MemberSink) -> None:
    try:
        sink.close()
    except Exception as exc:
        raise _Passthrough(exc) from exc


def scan_bundle(
    stream: Readable,
    *,
    source: str,
    expected_sha256: str | None = None,
    open_member: MemberOpener | None = None,
    compressed_size: int | None = None,
    limits: ExpansionLimits = DEFAULT_LIMITS,
) -> BundleReport:
    """Check a ``.tar.gz`` stream completely; never raises for bad content, only reports it.

    The gzip layer is decoded separately from the tar layer so that its CRC and length trailer are
    checked too; the raw bytes are hashed to the end even when the archive breaks early. The
    decompressed bytes are bounded by ``limits`` for a bundle of ``compressed_size`` (unknown: the
    absolute maximum). Any exception the gzip or tar parser raises is a malformed bundle, reported
    with its reason: a header is input from another system, and the stdlib parser raises more kinds
    of error on hostile headers (ValueError, OverflowError, ...) than it documents. Errors of the
    stream itself and of ``open_member``'s files (a network failure, a full disk) propagate: they
    say nothing about the bundle.
    """
    report = BundleReport(source=source, expected_sha256=expected_sha256)
    reader = HashingReader(_GuardedSource(stream))
    allowance = limits.allowance(compressed_size)
    scan = _Scan(report, open_member, allowance)
    readable = False
    try:
        with gzip.GzipFile(fileobj=reader, mode="rb") as decompressed:
            limited = _LimitedStream(decompressed, allowance)
            # _BoundedTarInfo bounds the extended headers tarfile parses before the scan sees a member.
            with tarfile.open(
                fileobj=cast("IO[bytes]", limited), mode="r|", encoding="utf-8", tarinfo=_BoundedTarInfo
            ) as tar:
                # Even in "r|" mode a TarFile keeps every TarInfo it reads in ``members`` unless its
                # ``stream`` flag is set (only the first header, read by open(), is kept): a scan that
                # never looks back must not hold one object per member.
                tar.stream = True
                for count, info in enumerate(tar, start=1):
                    if count > limits.max_members:
                        report.problems.append(
                            f"the bundle has more than {limits.max_members:,} members (the most a bundle may "
                            "hold); the rest was not read"
                        )
                        break
                    stop = scan.beyond_limit(info)
                    if stop is not None:
                        report.problems.append(stop)
                        break
                    scan.member(tar, info)
                else:
                    while limited.read(CHUNK_BYTES):  # trailing padding, then the gzip CRC check
                        pass
                    readable = True
    except _Passthrough as carried:
        raise carried.original from None
    except ExpansionLimitError as exc:
        report.problems.append(str(exc))
    except ExtendedHeaderError as exc:
        report.problems.append(f"not a readable .tar.gz: refused {exc}")
    except Exception as exc:  # any parser error is a bad bundle: see the docstring
        report.problems.append(f"not a readable .tar.gz: {type(exc).__name__}: {_short(exc)}")
    try:
        reader.drain()
    except _Passthrough as carried:
        raise carried.original from None
    report.object_sha256 = reader.hexdigest()
    report.object_size = reader.bytes_read
    if readable:
        scan.finish()
    if expected_sha256 is not None and expected_sha256 != report.object_sha256:
        report.problems.insert(
            0,
            f"whole-object SHA-256 mismatch: expected {expected_sha256}, the bytes hash to {report.object_sha256}",
        )
    return report


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception's message cut to one readable line (hostile headers can make it huge)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
