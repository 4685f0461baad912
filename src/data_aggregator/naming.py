"""Tar member names: safe, deterministic and unique, for any valid S3 key.

S3 keys may hold anything: a leading ``/``, ``//``, ``..`` segments, control characters, 1024 bytes
with no slash. Extracting such a name verbatim can escape the target directory or fail outright, yet
rejecting the key would lose the file. So every key maps to a safe relative POSIX path; keys that are
already safe keep their own name, and the manifest always records the original key.

Rules for a safe name: no leading ``/``, no empty, ``.`` or ``..`` segments, no control characters, no
segment longer than 255 UTF-8 bytes (NAME_MAX on common filesystems), never ``manifest.json`` (the
manifest's own name) nor anything under ``manifest.json/`` (which would make the manifest's name a
directory as well as a file), and never both a file and a directory prefix of another member, which
``tar xzf`` cannot extract.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

from data_aggregator.models import MANIFEST_MEMBER

MAX_SEGMENT_BYTES = 255
_MANIFEST_AS_DIRECTORY = MANIFEST_MEMBER.replace(".", "%2E")
_TAG_HEX = 12  # 48 bits of a SHA-256: collisions need ~16M keys in one bundle


def sanitize_key(key: str) -> str:
    """Map a key to a safe relative path; identity for keys that are already safe.

    Not injective on its own (``a//b`` and ``a/b`` both give ``a/b``); ``assign_member_names``
    resolves collisions within a bundle.
    """
    segments = [_safe_segment(part) for part in key.split("/") if part]
    if not segments:  # the key is only slashes
        return key.replace("/", "%2F")
    if len(segments) > 1 and segments[0] == MANIFEST_MEMBER:
        # ``manifest.json/x`` would need a directory named like the manifest file: escape its dot.
        segments[0] = _MANIFEST_AS_DIRECTORY
    return "/".join(segments)


def is_safe_name(name: str) -> bool:
    """True when a member name needs no change: it is its own sanitized form and not reserved."""
    return bool(name) and name != MANIFEST_MEMBER and sanitize_key(name) == name


def assign_member_names(entries: Sequence[tuple[str, str]]) -> list[str]:
    """Give each (key, object_id) a unique safe member name, in input order.

    Already-safe keys are served first so that they keep their own names even when an unsafe key
    earlier in the batch sanitizes to the same path; the loser of a collision gets a tag derived from
    its object id, which keeps the result deterministic for a given batch.
    """
    candidates = [sanitize_key(key) for key, _ in entries]
    directories = {name.rsplit("/", 1)[0] for name in candidates if "/" in name}
    directories |= {prefix for name in directories for prefix in _parents(name)}
    taken: set[str] = {MANIFEST_MEMBER}
    names: list[str | None] = [None] * len(entries)

    safe_first = sorted(range(len(entries)), key=lambda i: candidates[i] != entries[i][0])
    for index in safe_first:
        candidate = candidates[index]
        if candidate in taken or candidate in directories:
            candidate = _disambiguate(candidate, entries[index][1], taken | directories)
        taken.add(candidate)
        names[index] = candidate
    return [name for name in names if name is not None]


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _safe_segment(segment: str) -> str:
    if segment in (".", ".."):
        return segment.replace(".", "%2E")
    escaped = "".join(_escape_char(ch) for ch in segment)
    return _fit_segment(escaped)


def _escape_char(ch: str) -> str:
    if unicodedata.category(ch) != "Cc":
        return ch
    return "".join(f"%{byte:02X}" for byte in ch.encode("utf-8"))


def _fit_segment(segment: str, reserve: int = 0) -> str:
    """Shorten an over-long segment, keeping its start readable and a tag of the whole for uniqueness."""
    limit = MAX_SEGMENT_BYTES - reserve
    encoded = segment.encode("utf-8")
    if len(encoded) <= limit:
        return segment
    tag = "~" + hashlib.sha256(encoded).hexdigest()[:_TAG_HEX]
    head = encoded[: limit - len(tag)].decode("utf-8", errors="ignore")
    return head + tag


def _disambiguate(name: str, object_id: str, unavailable: set[str]) -> str:
    """Insert ``~<tag>`` before the extension of the last segment until the name is free."""
    parent, _, leaf = name.rpartition("/")
    stem, dot, extension = leaf.rpartition(".") if "." in leaf.lstrip(".") else (leaf, "", "")
    suffix = dot + extension
    attempt = 0
    while True:
        tag = "~" + object_id[:_TAG_HEX] + (f"-{attempt}" if attempt else "")
        room = MAX_SEGMENT_BYTES - len((tag + suffix).encode("utf-8"))
        short_stem = stem.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
        leaf_name = short_stem + tag + suffix
        if len(leaf_name.encode("utf-8")) > MAX_SEGMENT_BYTES:  # an absurdly long extension
            leaf_name = _fit_segment(leaf_name)
        candidate = f"{parent}/{leaf_name}" if parent else leaf_name
        if candidate not in unavailable:
            return candidate
        attempt += 1
