"""``data-aggregator verify``: check bundles in S3 or on disk against the contract.

For an S3 object the expected digest is its ``content-sha256`` metadata, and S3's own full-object
``ChecksumSHA256`` (when present) is compared too. The object-level rules of the contract (content
type, no content encoding, key named after the bundle id) are checked here; the bytes themselves are
checked by :func:`data_aggregator.ops.bundles.scan_bundle`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator.ops.awserrors import is_configuration_error
from data_aggregator.ops.bundles import DEFAULT_LIMITS, BundleReport, ExpansionLimits, scan_bundle
from data_aggregator.ops.hashing import CONTENT_SHA256_METADATA, b64_to_hex, normalize_sha256

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

BUNDLE_SUFFIX = ".tar.gz"
BUNDLE_CONTENT_TYPE = "application/gzip"


def expected_digest_problem(metadata: dict[str, str]) -> tuple[str | None, str | None]:
    """Return (valid expected digest, problem) from S3 user metadata."""
    value = metadata.get(CONTENT_SHA256_METADATA)
    if value is None:
        return None, f"no '{CONTENT_SHA256_METADATA}' metadata on the object"
    digest = normalize_sha256(value)
    if digest is None:
        return None, f"'{CONTENT_SHA256_METADATA}' metadata is not 64 hex digits: {value!r}"
    return digest, None


def verify_s3_bundle(
    s3: S3Client,
    bucket: str,
    key: str,
    version_id: str | None = None,
    *,
    limits: ExpansionLimits = DEFAULT_LIMITS,
) -> BundleReport:
    """Download (streaming) and check one bundle; a read failure is reported, not raised."""
    source = f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")
    request = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id:
        request["VersionId"] = version_id
    try:
        response = s3.get_object(**request)  # type: ignore[arg-type]
    except (ClientError, BotoCoreError) as exc:
        if is_configuration_error(exc):
            raise  # not this bundle's fault: the command line reports it as configuration (exit 2)
        if isinstance(exc, BotoCoreError):
            return BundleReport(source=source, problems=[f"cannot read the object: {exc}"])
        code = exc.response.get("Error", {}).get("Code", "error")
        return BundleReport(source=source, problems=[f"cannot read the object: {code}: {exc}"])

    expected, metadata_problem = expected_digest_problem(response.get("Metadata", {}))
    try:
        report = scan_bundle(
            response["Body"],
            source=source,
            expected_sha256=expected,
            compressed_size=response.get("ContentLength"),
            limits=limits,
        )
    except (ClientError, BotoCoreError) as exc:
        return BundleReport(source=source, problems=[f"download broke off: {exc}"])
    finally:
        response["Body"].close()

    object_problems = [metadata_problem] if metadata_problem else []
    object_problems.extend(_object_problems(response, report, key))
    report.problems[:0] = object_problems
    return report


def _object_problems(response: GetObjectOutputTypeDef, report: BundleReport, key: str) -> list[str]:
    """The object-level rules: content type, no encoding, full length read, checksum, key name."""
    problems: list[str] = []
    content_type = response.get("ContentType")
    if content_type != BUNDLE_CONTENT_TYPE:
        problems.append(f"ContentType is {content_type!r}, expected {BUNDLE_CONTENT_TYPE!r}")
    if response.get("ContentEncoding"):
        problems.append(
            f"ContentEncoding is {response['ContentEncoding']!r}: HTTP clients would decompress the "
            "bundle on download and hash different bytes"
        )
    length = response.get("ContentLength")
    if length is not None and length != report.object_size:
        problems.append(f"read {report.object_size:,} bytes but the object is {length:,} bytes")
    checksum = response.get("ChecksumSHA256")
    if checksum:
        s3_hex = b64_to_hex(checksum)
        if s3_hex is None:
            report.notes.append("S3 ChecksumSHA256 is a multipart composite; not comparable")
        elif s3_hex != report.object_sha256:
            problems.append(f"S3 ChecksumSHA256 {s3_hex} differs from the bytes' {report.object_sha256}")
        else:
            report.notes.append("S3 ChecksumSHA256 matches the bytes")
    if report.manifest is not None:
        stem = key.rsplit("/", 1)[-1].removesuffix(BUNDLE_SUFFIX)
        if not key.endswith(BUNDLE_SUFFIX):
            problems.append(f"key does not end in {BUNDLE_SUFFIX}")
        elif stem != report.manifest.bundle_id:
            problems.append(f"key names bundle {stem!r} but the manifest's bundle_id is {report.manifest.bundle_id!r}")
    return problems


def read_sidecar_digest(path: Path) -> str | None:
    """Expected digest from ``<file>.sha256`` (``sha256sum`` format) when such a file exists."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8").split()
    digest = normalize_sha256(text[0]) if text else None
    if digest is None:
        raise ValueError(f"{sidecar}: does not start with a hex SHA-256")
    return digest


def verify_local_bundle(
    path: Path, expected_sha256: str | None = None, *, limits: ExpansionLimits = DEFAULT_LIMITS
) -> BundleReport:
    """Check a bundle file; the expected digest comes from the caller or a ``.sha256`` sidecar.

    A directory is a usage mistake (``ValueError``), not a bad bundle: the operator meant the
    files inside it.
    """
    given = normalize_sha256(expected_sha256)
    if expected_sha256 is not None and given is None:
        raise ValueError(f"expected SHA-256 must be 64 hex digits, got {expected_sha256!r}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory: give the bundle files in it (for example {path}/*.tar.gz)")
    if not path.is_file():
        return BundleReport(source=str(path), problems=["no such file"])
    expected = given or read_sidecar_digest(path)
    with path.open("rb") as handle:
        report = scan_bundle(
            handle, source=str(path), expected_sha256=expected, compressed_size=path.stat().st_size, limits=limits
        )
    if expected is None:
        report.notes.append("whole-object SHA-256 not checked: pass --sha256 or provide a .sha256 file")
    return report
