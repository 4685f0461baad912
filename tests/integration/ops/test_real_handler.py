"""The production handler inside the sandbox: ESM semantics, redrive, and a short ``demo`` run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from data_aggregator.cli import main
from data_aggregator.ops.consume import Consumer
from data_aggregator.sandbox.emulator import Clients, Emulator
from data_aggregator.sandbox.esm import EventSourceMapping, MappingSettings
from data_aggregator.sandbox.harness import load_handler
from data_aggregator.sandbox.provision import QueueSettings, ResourceNames, provision, queue_depth
from tests.integration.ops.conftest import unique


def test_real_handler_behind_the_esm_bundles_files_and_poison_reaches_the_dlq(
    emulator: Emulator, clients: Clients, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment = provision(
        clients, ResourceNames.for_environment(unique("real")), QueueSettings(visibility_timeout=1, max_receive_count=1)
    )
    for name, value in {**emulator.environment(), **environment.handler_environment()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TIMEOUT_RESERVE_SECONDS", "1")
    keys = ["plain/a.json", "with space/ü+%.json", "odd//../x"]
    for key in keys:
        clients.s3.put_object(Bucket=environment.names.landing, Key=key, Body=key.encode())
    clients.sqs.send_message(QueueUrl=environment.queue_url, MessageBody="not json")
    invocations: list[Any] = []
    esm = EventSourceMapping(
        clients.sqs,
        environment.queue_url,
        environment.queue_arn,
        load_handler(),
        MappingSettings(batch_size=10, batching_window_seconds=0, function_timeout_seconds=10, idle_wait_seconds=1),
        on_invocation=invocations.append,
    )
    for _ in range(8):
        esm.poll_once()
        if queue_depth(clients, environment.dlq_url)[0] == 1 and queue_depth(clients, environment.queue_url) == (0, 0):
            break

    assert queue_depth(clients, environment.dlq_url) == (1, 0)
    assert clients.sqs.receive_message(QueueUrl=environment.dlq_url)["Messages"][0]["Body"] == "not json"
    assert invocations[0].error is None
    assert len(invocations[0].failed_ids) == 1  # only the poison message, reported, not raised
    result = Consumer(clients.s3, environment.names.distribution, tmp_path, durable=False).poll_once()
    assert result.rejected == []
    bundled = {entry.key: entry for bundle in result.consumed for entry in bundle.files}
    assert sorted(bundled) == sorted(keys)
    for bundle in result.consumed:
        for entry in bundle.files:
            assert (bundle.directory / entry.member).read_bytes() == entry.key.encode()


def test_demo_command_end_to_end_with_the_real_handler(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "demo",
            "--count",
            "30",
            "--rate",
            "100",
            "--batch-size",
            "10",
            "--window",
            "0.5",
            "--function-timeout",
            "5",
            "--claim-lease",
            "6",
            "--visibility-timeout",
            "7",
            "--poison",
            "0",
            "--duplicates",
            "4",
            "--large-every",
            "10",
            "--drain-timeout",
            "60",
            "--workdir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.out
    assert "files uploaded  30" in out.out
    assert "  delivered     30 (30 exactly once, 0 more than once, 0 altered; 4 duplicate notifications injected)" in (
        out.out
    )
    assert "  dead-lettered 0" in out.out
    assert "  lost          0" in out.out
    assert "RESULT: PASS" in out.out
    assert "uploaded 30/30" in out.err
    log_lines = [
        json.loads(line) for line in (tmp_path / "handler.log").read_text().splitlines() if line.startswith("{")
    ]
    assert any(line.get("function_name") == "data-aggregator-dev-bundler" for line in log_lines)
