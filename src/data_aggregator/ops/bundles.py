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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from data_aggregator.models import MANIFEST_MEMBER, Manifest
from data_aggregator.ops.hashing import CHUNK_BYTES, HashingReader, Readable

MAX_SEGMENT_BYTES = 255
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_PROBLEMS_LISTED = 50


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
            lines.append(f"  result   FAILED ({len(self.problems)} problem(s))")
            lines.extend(f"  - {problem}" for problem in self.problems[:MAX_PROBLEMS_LISTED])
            if len(self.problems) > MAX_PROBLEMS_LISTED:
                lines.append(f"  - ... and {len(self.problems) - MAX_PROBLEMS_LISTED} more")
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
    characters, valid UTF-8, and segments short enough for common filesystems.
    """
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


def _kind(info: tarfile.TarInfo) -> str:
    kind = _KINDS.get(info.type, f"tar type {info.type!r}")
    return f"{kind} to {info.linkname!r}" if info.issym() or info.islnk() else kind


class _Scan:
    """State of one pass over a bundle's members."""

    def __init__(self, report: BundleReport, open_member: MemberOpener | None) -> None:
        self.report = report
        self.open_member = open_member
        self.digests: dict[str, MemberDigest] = {}
        self.manifest_bytes: bytes | None = None
        self.members_after_manifest = 0

    def refusal(self, info: tarfile.TarInfo) -> str | None:
        """Why this member is not read at all, or None."""
        name = info.name
        if not info.isreg() or info.issparse():
            return f"member {name!r}: {_kind(info)} is not allowed (regular files only)"
        reason = unsafe_member_reason(name)
        if reason is not None:
            return f"member {name!r}: unsafe name ({reason})"
        if name in self.digests or (name == MANIFEST_MEMBER and self.manifest_bytes is not None):
            return f"member {name!r}: appears more than once"
        if name == MANIFEST_MEMBER and info.size > MAX_MANIFEST_BYTES:
            return f"{MANIFEST_MEMBER} is {info.size:,} bytes, above {MAX_MANIFEST_BYTES:,}"
        return None

    def member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        problems = self.report.problems
        name = info.name
        if self.manifest_bytes is not None:
            self.members_after_manifest += 1
        refusal = self.refusal(info)
        if refusal is not None:
            problems.append(refusal)
            return
        source = tar.extractfile(info)
        if source is None:  # pragma: no cover - isreg() members always have a file object
            problems.append(f"member {name!r}: no data")
            return
        if name == MANIFEST_MEMBER:
            self.manifest_bytes = source.read()
            return
        try:
            sink = self.open_member(info) if self.open_member is not None else None
        except MemberRefusedError as exc:
            problems.append(f"member {name!r}: refused: {exc}")
            return
        digest = hashlib.sha256()
        size = 0
        try:
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            if sink is not None:
                sink.close()
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
                problems.append(f"manifest lists member {entry.member!r} more than once")
                continue
            listed.add(entry.member)
            actual = self.digests.get(entry.member)
            if actual is None:
                problems.append(f"manifest lists {entry.member!r} (key {entry.key!r}) but no such member exists")
                continue
            if actual.size != entry.size:
                problems.append(f"member {entry.member!r}: size {actual.size:,} but the manifest says {entry.size:,}")
            if actual.sha256 != entry.sha256:
                problems.append(f"member {entry.member!r}: sha256 {actual.sha256} but the manifest says {entry.sha256}")
        problems.extend(f"member {name!r} is not listed in the manifest" for name in self.digests if name not in listed)


def scan_bundle(
    stream: Readable,
    *,
    source: str,
    expected_sha256: str | None = None,
    open_member: MemberOpener | None = None,
) -> BundleReport:
    """Check a ``.tar.gz`` stream completely; never raises for bad content, only reports it.

    The gzip layer is decoded separately from the tar layer so that its CRC and length trailer are
    checked too; the raw bytes are hashed to the end even when the archive breaks early. Errors
    raised by ``open_member``'s files (a full disk) propagate: they say nothing about the bundle.
    """
    report = BundleReport(source=source, expected_sha256=expected_sha256)
    reader = HashingReader(stream)
    scan = _Scan(report, open_member)
    readable = False
    try:
        with (
            gzip.GzipFile(fileobj=reader, mode="rb") as decompressed,
            tarfile.open(fileobj=decompressed, mode="r|", encoding="utf-8") as tar,
        ):
            for info in tar:
                scan.member(tar, info)
            while decompressed.read(CHUNK_BYTES):  # trailing padding, then the gzip CRC check
                pass
        readable = True
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        report.problems.append(f"not a readable .tar.gz: {type(exc).__name__}: {exc}")
    reader.drain()
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
