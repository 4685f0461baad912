"""Streaming SHA-256 helpers shared by verify, replay and consume.

Bundles can be hundreds of megabytes, so every check hashes while the bytes stream past instead of
buffering an object; the same reader feeds both the digest and whatever consumes the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from typing import IO, Protocol

CHUNK_BYTES = 1024 * 1024
CONTENT_SHA256_METADATA = "content-sha256"
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class Readable(Protocol):
    """Anything with ``read(n)``: a local file or botocore's StreamingBody."""

    def read(self, amt: int = ..., /) -> bytes: ...


class HashingReader:
    """Wraps a byte stream; hashes and counts exactly what its consumer reads."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        """Read like ``io.RawIOBase.read``; -1 reads to the end in bounded chunks."""
        if size is None or size < 0:
            parts = []
            while chunk := self._source.read(CHUNK_BYTES):
                self._account(chunk)
                parts.append(chunk)
            return b"".join(parts)
        chunk = self._source.read(size)
        self._account(chunk)
        return chunk

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Refuse to seek: a stream hashed once, front to back, is the whole point."""
        raise io.UnsupportedOperation(f"HashingReader cannot seek (offset {offset}, whence {whence})")

    def drain(self) -> None:
        """Read and discard the rest so the digest covers the whole object."""
        while chunk := self._source.read(CHUNK_BYTES):
            self._account(chunk)

    def hexdigest(self) -> str:
        """Digest of everything read so far."""
        return self._digest.hexdigest()

    def _account(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.bytes_read += len(chunk)


def copy_hashing(source: Readable, sink: IO[bytes]) -> tuple[str, int]:
    """Copy a stream into a file in bounded chunks; return (hex SHA-256, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        sink.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_of_stream(source: Readable) -> tuple[str, int]:
    """Hash a stream to its end without keeping it; return (hex SHA-256, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def is_hex_sha256(value: str) -> bool:
    """True for 64 hex digits in either case (an operator pasting ``SHA256SUM`` output is not wrong)."""
    return bool(_HEX_SHA256.fullmatch(value))


def normalize_sha256(value: str | None) -> str | None:
    """The lowercase form of a hex SHA-256 in either case; None for anything else."""
    return value.lower() if value is not None and is_hex_sha256(value) else None


def hex_to_b64(hex_digest: str) -> str:
    """The base64 form S3 uses for ``ChecksumSHA256``."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def b64_to_hex(b64_digest: str) -> str | None:
    """Hex form of a full-object ``ChecksumSHA256``; None for composite (multipart) or malformed values.

    A multipart checksum ends in ``-<parts>`` and is a hash of part hashes, so it cannot be compared
    with the object's own digest.
    """
    if "-" in b64_digest:
        return None
    try:
        raw = base64.b64decode(b64_digest, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and key named on the command line."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Location:
    """Parse ``s3://bucket/key``; the error says which part is missing."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
    bucket, slash, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket name: {uri!r}")
    if not slash or not key:
        raise ValueError(f"S3 URI has no object key after the bucket: {uri!r}")
    return S3Location(bucket, key)
