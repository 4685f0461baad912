"""The demo's orchestration end to end, with a contract-honouring stand-in for the handler.

The stand-in lets these tests pin down the sandbox itself (uploader, ESM, consumer, reconciliation,
DLQ accounting) independently of the production handler, which has its own demo test.
"""

from __future__ import annotations

import io
import shlex
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from data_aggregator.cli import main
from data_aggregator.sandbox import demo as demo_module
from data_aggregator.sandbox.backends import Backend
from data_aggregator.sandbox.demo import DemoInterruptedError, DemoOptions, operator_instructions, run_demo
from data_aggregator.sandbox.emulator import Clients, Emulator
from data_aggregator.sandbox.esm import Handler
from data_aggregator.sandbox.provision import Environment
from data_aggregator.sandbox.uploader import SizeMix
from tests.contract_handler import ContractHandler
from tests.integration.ops.conftest import unique

FAST = {
    "rate": 200.0,
    "count": 40,
    "batch_size": 10,
    "window_seconds": 0.2,
    # Roomy enough that a busy machine never times an invocation out: with these, any message in the
    # DLQ means the sandbox mishandled it, not that the machine was slow.
    "function_timeout_seconds": 5.0,
    "claim_lease_seconds": 6,
    "visibility_timeout": 7,
    "max_receive_count": 3,
    "duplicates": 4,
    "stall_timeout_seconds": 30.0,
    "consumer_interval_seconds": 0.1,
    "mix": SizeMix(small_min=10, small_max=3000, large_min=100_000, large_max=200_000, large_every=15, odd_every=3),
}


def contract_handler(clients: Clients, environment: Environment) -> Handler:
    return ContractHandler(clients.s3, environment.names.archive, environment.names.distribution)


def test_demo_passes_with_a_correct_handler(emulator: Emulator, tmp_path: Path) -> None:
    status = io.StringIO()
    options = DemoOptions(**FAST, poison=0, workdir=tmp_path, environment_name=unique("demo"))  # type: ignore[arg-type]
    report = run_demo(options, make_handler=contract_handler, emulator=emulator, status=status)
    assert report.problems == []
    assert report.reconciliation.uploaded == 40
    assert report.reconciliation.bundled == 40
    assert report.duplicates_sent == 4
    assert report.dlq_depth == 0
    assert report.bundles >= 1
    assert report.distribution_left == 0
    assert len(report.reconciliation.latencies) == 40
    assert len(report.invocation_seconds) == report.invocations > 0
    assert "RESULT: PASS" in report.render()
    assert "uploaded 40/40" in status.getvalue()


class LosingHandler(ContractHandler):
    """Acknowledges every message but never bundles keys containing a space: silent loss."""

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        kept = [r for r in event["Records"] if "+" not in r["body"]]
        return super().__call__({"Records": kept}, context)


class DuplicatingHandler(ContractHandler):
    """Forgets what it bundled, so duplicate notifications produce duplicate files."""

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.done.clear()
        return super().__call__(event, context)


def test_demo_fails_on_loss_and_on_duplicates(emulator: Emulator, tmp_path: Path) -> None:
    def losing(clients: Clients, environment: Environment) -> Handler:
        return LosingHandler(clients.s3, environment.names.archive, environment.names.distribution)

    def duplicating(clients: Clients, environment: Environment) -> Handler:
        return DuplicatingHandler(clients.s3, environment.names.archive, environment.names.distribution)

    options = DemoOptions(
        **{**FAST, "count": 12, "stall_timeout_seconds": 1.5},  # type: ignore[arg-type]
        poison=0,
        workdir=tmp_path / "a",
        environment_name=unique("lossy"),
    )
    lost = run_demo(options, make_handler=losing, emulator=emulator, status=io.StringIO())
    assert lost.reconciliation.missing
    assert not lost.ok
    assert any("file(s) lost" in p for p in lost.problems)
    assert "RESULT: FAIL" in lost.render()

    options = DemoOptions(
        **{**FAST, "count": 12},  # type: ignore[arg-type]
        poison=0,
        workdir=tmp_path / "b",
        environment_name=unique("doubled"),
    )
    doubled = run_demo(options, make_handler=duplicating, emulator=emulator, status=io.StringIO())
    assert doubled.reconciliation.duplicated
    assert any("delivered more than once" in p for p in doubled.problems)


class HandingBackHandler(ContractHandler):
    """Fails (hands back) every message naming a key with a space, however often it comes back."""

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        refused = [r for r in event["Records"] if "+" in r["body"] or "%20" in r["body"]]
        kept = [r for r in event["Records"] if r not in refused]
        response = super().__call__({"Records": kept}, context)
        response["batchItemFailures"].extend({"itemIdentifier": r["messageId"]} for r in refused)
        return response


def handing_back(clients: Clients, environment: Environment) -> Handler:
    return HandingBackHandler(clients.s3, environment.names.archive, environment.names.distribution)


def test_files_in_the_dlq_are_reported_recoverable_not_lost(emulator: Emulator, tmp_path: Path) -> None:
    options = DemoOptions(
        **{**FAST, "max_receive_count": 2},  # type: ignore[arg-type]
        poison=0,
        workdir=tmp_path,
        environment_name=unique("dlq"),
    )
    report = run_demo(options, make_handler=handing_back, emulator=emulator, status=io.StringIO())
    where = report.whereabouts
    assert where.dead_lettered, "the handed-back files must have reached the DLQ"
    assert where.lost == []
    assert report.reconciliation.missing == sorted(where.dead_lettered)
    text = report.render()
    assert f"  dead-lettered {len(where.dead_lettered)} (recoverable: data-aggregator dlq redrive --dlq " in text
    assert "  lost          0" in text
    assert "RESULT: FAIL (correctness)" in text  # a healthy file in the DLQ is a defect, but not a loss


def test_a_run_that_stops_waiting_reports_late_files_as_late_not_lost(emulator: Emulator, tmp_path: Path) -> None:
    # Handed back for ever (a receive count SQS never reaches), and the run stops waiting after 3 s of
    # no progress: those files are still queued (in flight between receives), never "lost".
    options = DemoOptions(
        **{**FAST, "max_receive_count": 1000, "stall_timeout_seconds": 3.0},  # type: ignore[arg-type]
        poison=0,
        workdir=tmp_path,
        environment_name=unique("late"),
    )
    report = run_demo(options, make_handler=handing_back, emulator=emulator, status=io.StringIO())
    where = report.whereabouts
    assert where.late, "the handed-back files are still on their way"
    assert (where.lost, where.dead_lettered) == ([], [])
    assert report.correctness_problems == []
    assert len(report.delivery_problems) == 1
    assert "nothing moved for 3 s" in report.delivery_problems[0]
    assert "RESULT: FAIL (delivery)" in report.render()


class CtrlCStream(io.StringIO):
    """A status stream whose first write is where the user presses Ctrl-C (on the main thread)."""

    def write(self, text: str) -> int:
        raise KeyboardInterrupt


def test_ctrl_c_stops_the_run_and_removes_its_temporary_directory(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = {thread.name for thread in threading.enumerate()}
    options = DemoOptions(**FAST, poison=0, environment_name=unique("demo"))  # type: ignore[arg-type]
    with pytest.raises(DemoInterruptedError) as interrupted:
        run_demo(options, make_handler=contract_handler, emulator=emulator, status=CtrlCStream())
    assert interrupted.value.workdir is None
    assert list(tmp_path.iterdir()) == []
    leftover = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert not {name for name in leftover if name.startswith(("esm-poller", "consumer", "uploader"))}


def test_ctrl_c_keeps_a_directory_the_user_named(emulator: Emulator, tmp_path: Path) -> None:
    options = DemoOptions(**FAST, poison=0, workdir=tmp_path, environment_name=unique("demo"))  # type: ignore[arg-type]
    with pytest.raises(DemoInterruptedError) as interrupted:
        run_demo(options, make_handler=contract_handler, emulator=emulator, status=CtrlCStream())
    assert interrupted.value.workdir == tmp_path


def test_cli_demo_interrupted_exits_130_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_options: DemoOptions, **_kwargs: object) -> None:
        raise DemoInterruptedError(None)

    monkeypatch.setattr(demo_module, "run_demo", interrupted)
    assert main(["demo"]) == 130
    err = capsys.readouterr().err
    assert err == "data-aggregator demo: interrupted; temporary work directory removed\n"


def test_keep_leaves_the_emulator_to_the_operator_commands_as_printed(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: dict[str, int] = {}

    def operator(report: Any, running: Backend, environment: Environment) -> None:
        text = operator_instructions(running, environment, report.workdir)
        for line in text.splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                monkeypatch.setenv(name, value)
        for line in text.splitlines():
            if line.startswith("data-aggregator "):
                argv = shlex.split(line.partition("#")[0])[1:]
                ran[" ".join(argv[:2])] = main(argv)

    options = DemoOptions(**FAST, poison=1, workdir=tmp_path, environment_name=unique("demo"))  # type: ignore[arg-type]
    report = run_demo(options, make_handler=contract_handler, emulator=emulator, status=io.StringIO(), after=operator)
    assert report.problems == []
    assert len(ran) == 5
    assert set(ran.values()) == {0}, ran
    assert {"dlq list", "replay --prefix", "replay --key", "consume --once"} < set(ran)
    out = capsys.readouterr().out
    assert "consumed bundles/" in out  # the replayed bundle went through the consumer again


def test_the_emulator_does_not_keep_a_table_copy_per_transaction(emulator: Emulator) -> None:
    """moto deep-copies the table for every TransactWriteItems and tracked every copy: memory grew with
    files x claims (about 1.1 GB for the default run). The demo drops that bookkeeping as it goes."""
    from moto.dynamodb.models.table import Table

    clients = emulator.clients()
    name = unique("claims")
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "ObjectID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "ObjectID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for index in range(20):
        clients.dynamodb.transact_write_items(
            TransactItems=[{"Put": {"TableName": name, "Item": {"ObjectID": {"S": f"o-{index}"}}}}]
        )
    assert len(getattr(Table, "instances_tracked")) >= 20  # what moto does on its own  # noqa: B009
    demo_module.release_emulator_bookkeeping()
    assert getattr(Table, "instances_tracked") == []  # noqa: B009
    assert clients.dynamodb.scan(TableName=name)["Count"] == 20  # the live table is untouched


def test_the_demo_releases_the_bookkeeping_while_it_runs(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = demo_module.release_emulator_bookkeeping

    def counted() -> None:
        calls.append(1)
        original()

    monkeypatch.setattr(demo_module, "release_emulator_bookkeeping", counted)
    options = DemoOptions(**FAST, poison=0, workdir=tmp_path, environment_name=unique("demo"))  # type: ignore[arg-type]
    assert run_demo(options, make_handler=contract_handler, emulator=emulator, status=io.StringIO()).ok
    assert calls
