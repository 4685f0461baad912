"""What scenarios send (keys, bytes, poison) and how the closing report reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, get_args

import pytest

from data_aggregator.errors import PoisonMessageError
from data_aggregator.events import parse_message
from data_aggregator.naming import assign_member_names
from data_aggregator.sandbox.uploader import UploadedFile
from e2e_tests.config import DEAD_LETTER_KINDS, PoisonKind, ScenarioConfig
from e2e_tests.faults import InjectionCount
from e2e_tests.memory import MemoryProbe, status_kib
from e2e_tests.report import by_kind, render
from e2e_tests.runner import ScenarioResult
from e2e_tests.target import TargetFindings
from e2e_tests.verdict import Figures
from e2e_tests.workload import body_of, content_chunks, plan_files, poison_body


def scenario(files: list[dict[str, Any]], seed: int = 1) -> ScenarioConfig:
    return ScenarioConfig.model_validate({"name": "w", "description": "d", "seed": seed, "upload": {"files": files}})


def test_planned_keys_are_unique_valid_s3_keys_under_the_prefix() -> None:
    config = scenario([{"count": 60, "size": 1, "keys": "awkward"}, {"count": 20, "size": 1, "versions": 2}])
    planned = plan_files(config, "run-1/")
    keys = [item.key for item in planned]
    assert len(set(keys)) == len(keys) == 80
    assert all(0 < len(key.encode("utf-8")) <= 1024 for key in keys)
    assert all(key.startswith(("run-1/", "/run-1/")) for key in keys)
    awkward = "".join(keys[:60])
    for oddity in (" ", "+", "%", "ü", "..", "//", "\t", "?", "#", "\U0001f600"):
        assert oddity in awkward
    assert any(key.startswith("/") for key in keys)
    assert max(len(key.encode("utf-8")) for key in keys) == 1024
    assert all(len(item.sizes) == 2 for item in planned[60:])
    # Every awkward key still gets a distinct safe member name.
    names = assign_member_names([(key, str(index)) for index, key in enumerate(keys)])
    assert len(set(names)) == len(names)


def test_content_is_reproducible_sized_and_of_its_kind() -> None:
    for kind in ("random", "jsonl", "compressible"):
        first = b"".join(content_chunks(kind, 3_000_000, seed=5))
        assert len(first) == 3_000_000
        assert first == b"".join(content_chunks(kind, 3_000_000, seed=5))
        assert first != b"".join(content_chunks(kind, 3_000_000, seed=6))
    assert all(len(chunk) <= 1024 * 1024 for chunk in content_chunks("random", 3_000_000, seed=1))
    assert b"".join(content_chunks("random", 0, seed=1)) == b""


def test_large_bodies_come_from_a_file_and_small_ones_from_memory(tmp_path: Path) -> None:
    with body_of("random", 100, 1, tmp_path) as (body, sha256):
        assert isinstance(body, bytes)
        assert sha256 == hashlib.sha256(body).hexdigest()
    with body_of("jsonl", 9 * 1024 * 1024, 1, tmp_path) as (body, sha256):
        assert not isinstance(body, bytes)
        assert hashlib.sha256(body.read()).hexdigest() == sha256


def test_poison_bodies_fail_or_are_acknowledged_as_the_spec_says() -> None:
    good = UploadedFile(key="run/g0/a b.json", size=3, sha256="0" * 64, etag="e", version_id=None, uploaded_at=0)
    for index, kind in enumerate(get_args(PoisonKind)):
        body = poison_body(kind, index, "run-x", good=good, bucket="landing", region="eu-west-1")
        assert "run-x" in body
        if kind.startswith("sns_"):
            assert json.loads(body)["Type"] == "Notification"
        if kind.startswith("eventbridge_"):
            assert json.loads(body)["source"] == "aws.s3"
        try:
            parsed = parse_message(body)
        except PoisonMessageError:
            assert kind in DEAD_LETTER_KINDS
            continue
        assert bool(parsed.problems) == (kind in DEAD_LETTER_KINDS), kind
        if kind == "good_and_bad_records":
            assert [obj.key for obj in parsed.objects] == ["run/g0/a b.json"]
        if kind in ("test_event", "sns_test_event"):
            assert parsed.is_test_event
        if kind in ("non_created_event", "eventbridge_object_deleted"):
            assert parsed.ignored_records == 1

    with pytest.raises(ValueError, match="needs an uploaded file"):
        poison_body("good_and_bad_records", 0, "m", good=None, bucket="b", region="r")


def test_the_memory_probe_reports_a_peak_at_least_its_start() -> None:
    probe = MemoryProbe(interval_seconds=0.01)
    probe.start()
    ballast = bytearray(64 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    peak = probe.stop()
    assert peak >= probe.start_mib + 50
    assert status_kib("VmRSS") is not None
    del ballast


def result(name: str, problems: list[str], faults: list[InjectionCount]) -> ScenarioResult:
    figures = Figures(files_uploaded=3, files_expected=3, files_delivered=3 - len(problems), bundles=1)
    return ScenarioResult(
        name=name,
        target="local",
        problems=problems,
        figures=figures,
        findings=TargetFindings(faults=faults),
        elapsed_seconds=1.0,
        workdir=Path("scenario-logs") if problems else None,
    )


def test_the_report_has_a_row_per_scenario_and_explains_failures() -> None:
    faults = [
        InjectionCount("s3:GetObject throttle", "throttle", 10, 2),
        InjectionCount("s3:PutObject server_error (applied)", "server_error", 5, 1, applied=True),
        InjectionCount("kill after claim", "kill", 4, 1),
    ]
    text = render([result("fine", [], faults), result("broken", ["1 file(s) lost: 'x'"], [])])
    lines = text.splitlines()
    assert lines[2].split()[:4] == ["fine", "PASS", "3/3", "1"]
    assert lines[3].split()[:4] == ["broken", "FAIL", "2/3", "1"]
    assert "  by kind    throttle 2, server error after taking effect 1, kill after claim 1; all survived" in text
    assert "kill after claim: 1 of 4 times reached" in text
    assert "  PROBLEM    1 file(s) lost: 'x'" in text
    assert text.endswith("RESULT: FAIL - 1 of 2 scenario(s) passed")
    assert by_kind([]) == ""
