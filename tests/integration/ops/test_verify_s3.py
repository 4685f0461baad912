"""``verify`` against S3 objects: the object-level rules and the bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_aggregator.cli import main
from data_aggregator.ops.verify import verify_s3_bundle
from data_aggregator.sandbox.emulator import Clients, Emulator
from tests.bundle_factory import build_bundle, bundle_key, put_bundle, sample_files, sha256_hex
from tests.integration.ops.conftest import Buckets


def test_good_bundle_in_s3(clients: Clients, buckets: Buckets) -> None:
    data = build_bundle(sample_files(), "b-ok")
    key = bundle_key("b-ok")
    put_bundle(clients.s3, buckets.distribution, key, data)
    report = verify_s3_bundle(clients.s3, buckets.distribution, key)
    assert report.ok, report.problems
    assert report.expected_sha256 == sha256_hex(data)


def test_metadata_digest_mismatch_is_a_failure(clients: Clients, buckets: Buckets) -> None:
    data = build_bundle(sample_files(), "b-bad")
    key = bundle_key("b-bad")
    put_bundle(clients.s3, buckets.distribution, key, data, sha256="0" * 64)
    report = verify_s3_bundle(clients.s3, buckets.distribution, key)
    assert report.problems == [
        f"whole-object SHA-256 mismatch: expected {'0' * 64}, the bytes hash to {sha256_hex(data)}"
    ]


def test_object_level_contract_violations(clients: Clients, buckets: Buckets) -> None:
    data = build_bundle(sample_files(), "b-inside")
    key = "bundles/2026/11/22/14/b-outside.tar.gz"
    clients.s3.put_object(
        Bucket=buckets.distribution,
        Key=key,
        Body=data,
        ContentType="application/x-tar",
        ContentEncoding="gzip",
    )
    problems = verify_s3_bundle(clients.s3, buckets.distribution, key).problems
    assert problems[0] == "no 'content-sha256' metadata on the object"
    assert "ContentType is 'application/x-tar', expected 'application/gzip'" in problems
    assert any(p.startswith("ContentEncoding is 'gzip'") for p in problems)
    assert "key names bundle 'b-outside' but the manifest's bundle_id is 'b-inside'" in problems


def test_missing_object_is_reported(clients: Clients, buckets: Buckets) -> None:
    report = verify_s3_bundle(clients.s3, buckets.distribution, "bundles/none.tar.gz")
    assert not report.ok
    assert "NoSuchKey" in report.problems[0]


def test_cli_verify_exit_codes_and_json(
    aws_env: Emulator, clients: Clients, buckets: Buckets, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = build_bundle(sample_files(), "b-good")
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-good"), good)
    corrupt = bytearray(build_bundle(sample_files(), "b-corrupt"))
    digest = sha256_hex(bytes(corrupt))
    corrupt[100] ^= 0xFF
    put_bundle(clients.s3, buckets.distribution, bundle_key("b-corrupt"), bytes(corrupt), sha256=digest)

    assert main(["verify", f"s3://{buckets.distribution}/{bundle_key('b-good')}"]) == 0
    assert "result   OK" in capsys.readouterr().out

    code = main(
        [
            "verify",
            "--json",
            f"s3://{buckets.distribution}/{bundle_key('b-good')}",
            f"s3://{buckets.distribution}/{bundle_key('b-corrupt')}",
        ]
    )
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["ok"] for line in lines] == [True, False]
    assert lines[1]["problems"][0].startswith("whole-object SHA-256 mismatch")

    local = tmp_path / "b-good.tar.gz"
    local.write_bytes(good)
    assert main(["verify", str(local), "--sha256", sha256_hex(good)]) == 0
    capsys.readouterr()
    assert main(["verify", str(local), "--sha256", "1" * 64]) == 1
    assert "MISMATCH" in capsys.readouterr().out
