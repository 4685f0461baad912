"""Build bundles for tests the way the contract describes them, with knobs to break them.

The operator tools must not trust the production writer, so tests build their own bundles from the
contract: one tar member per file, ``manifest.json`` last, PAX headers, gzip around it all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.models import MANIFEST_MEMBER, Manifest, ManifestEntry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CREATED_AT = "2026-11-22T14:05:00.000Z"


@dataclass(frozen=True)
class SourceFile:
    """One file to put in a bundle."""

    key: str
    body: bytes
    member: str | None = None
    bucket: str = "landing"

    @property
    def member_name(self) -> str:
        return self.member if self.member is not None else self.key


def manifest_for(files: Sequence[SourceFile], bundle_id: str) -> Manifest:
    """The honest manifest for these files."""
    return Manifest(
        bundle_id=bundle_id,
        created_at=CREATED_AT,
        files=[
            ManifestEntry(
                member=f.member_name,
                bucket=f.bucket,
                key=f.key,
                version_id=None,
                etag=hashlib.md5(f.body, usedforsecurity=False).hexdigest(),
                size=len(f.body),
                sha256=hashlib.sha256(f.body).hexdigest(),
                event_time="2026-11-22T14:04:59.000Z",
            )
            for f in files
        ],
    )


def _add(tar: tarfile.TarFile, name: str, body: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    info.mode = 0o644
    info.mtime = 1_795_000_000
    tar.addfile(info, io.BytesIO(body))


def build_bundle(
    files: Sequence[SourceFile],
    bundle_id: str = "b-0001",
    *,
    manifest: Manifest | bytes | None = None,
    with_manifest: bool = True,
    manifest_first: bool = False,
    extra: Callable[[tarfile.TarFile], None] | None = None,
) -> bytes:
    """A ``.tar.gz`` bundle; ``extra`` may append hostile members before the manifest."""
    manifest_bytes: bytes
    if isinstance(manifest, bytes):
        manifest_bytes = manifest
    else:
        manifest_bytes = (manifest or manifest_for(files, bundle_id)).to_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        if with_manifest and manifest_first:
            _add(tar, MANIFEST_MEMBER, manifest_bytes)
        for f in files:
            _add(tar, f.member_name, f.body)
        if extra is not None:
            extra(tar)
        if with_manifest and not manifest_first:
            _add(tar, MANIFEST_MEMBER, manifest_bytes)
    return raw.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_key(bundle_id: str, hour: str = "2026/11/22/14", prefix: str = "bundles/") -> str:
    return f"{prefix}{hour}/{bundle_id}.tar.gz"


def put_bundle(
    s3: S3Client,
    bucket: str,
    key: str,
    data: bytes,
    *,
    sha256: str | None = None,
    storage_class: str | None = None,
    content_type: str = "application/gzip",
) -> str | None:
    """Upload like the handler does (metadata and checksum); returns the new VersionId."""
    digest = sha256 if sha256 is not None else sha256_hex(data)
    extra: dict[str, str] = {}
    if storage_class:
        extra["StorageClass"] = storage_class
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        Metadata={"content-sha256": digest},
        ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        **extra,  # type: ignore[arg-type]
    )
    return response.get("VersionId")


def sample_files(count: int = 3) -> list[SourceFile]:
    """A few ordinary files with distinct content."""
    return [SourceFile(f"incoming/{i:03d}.jsonl", f'{{"row": {i}}}\n'.encode() * (i + 1)) for i in range(count)]
