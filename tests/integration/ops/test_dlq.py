"""``dlq``: list dead-lettered events decoded, without losing them, and redrive them (both paths)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from data_aggregator.cli import main
from data_aggregator.ops.dlq import DeadLetterQueue, Method, classify
from data_aggregator.sandbox.emulator import Clients, Emulator
from data_aggregator.sandbox.provision import Environment, QueueSettings, ResourceNames, provision
from tests.integration.ops.conftest import unique


def s3_event(key: str, version: str | None = "v1") -> str:
    obj: dict[str, Any] = {"key": key, "size": 3}
    if version:
        obj["versionId"] = version
    return json.dumps(
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "landing"}, "object": obj}}]}
    )


BODIES = {
    "plain": s3_event("reports/a+b%2Fc%C3%A9.csv"),
    "sns": json.dumps({"Type": "Notification", "Message": s3_event("sns/x.csv", None)}),
    "bridge": json.dumps(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": "landing"}, "object": {"key": "raw key+.csv", "version-id": "v9"}},
        }
    ),
    "poison": "this is not json",
    "test": json.dumps({"Event": "s3:TestEvent", "Bucket": "landing"}),
}


@pytest.fixture
def environment(clients: Clients) -> Environment:
    env = provision(clients, ResourceNames.for_environment(unique("dlq")), QueueSettings(max_receive_count=2))
    clients.sqs.purge_queue(QueueUrl=env.queue_url)  # the notification set-up's s3:TestEvent
    for body in BODIES.values():
        clients.sqs.send_message(QueueUrl=env.dlq_url, MessageBody=body)
    return env


def depth(clients: Clients, url: str) -> int:
    attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_classify_decodes_every_shape_the_function_accepts() -> None:
    kind, _, objects = classify(BODIES["plain"])
    assert (kind, objects[0].bucket, objects[0].key, objects[0].version_id) == (
        "s3-event",
        "landing",
        "reports/a b/cé.csv",
        "v1",
    )
    assert classify(BODIES["sns"])[2][0].key == "sns/x.csv"
    assert classify(BODIES["bridge"])[2][0].key == "raw key+.csv"  # EventBridge keys are not encoded
    assert classify(BODIES["poison"])[0] == "poison"
    assert classify(BODIES["test"])[0] == "test-event"
    assert classify("[1, 2]")[0] == "poison"
    assert classify('{"Records": [{"eventName": "x"}]}')[1] == "Records hold no S3 object"


@pytest.mark.usefixtures("aws_env")
def test_list_shows_decoded_messages_and_leaves_them_in_place(
    clients: Clients, environment: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--dlq", environment.dlq_url, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == len(BODIES)
    by_key = {o["key"]: (o, m) for m in listed for o in m["objects"]}
    plain, message = by_key["reports/a b/cé.csv"]
    assert (plain["bucket"], plain["version_id"]) == ("landing", "v1")
    assert message["receive_count"] >= 1
    assert message["failure_class"] == "s3-event"
    assert sorted(m["failure_class"] for m in listed) == ["poison", "s3-event", "s3-event", "s3-event", "test-event"]
    assert depth(clients, environment.dlq_url) == len(BODIES)  # visible again at once

    assert main(["dlq", "list", "--dlq", environment.names.dead_letter_queue]) == 0  # a name works too
    captured = capsys.readouterr()
    assert "s3://landing/reports/a b/cé.csv  version v1" in captured.out
    assert "5 message(s)" in captured.err


@pytest.mark.usefixtures("aws_env")
def test_redrive_dry_run_then_copy_path_moves_everything_back(
    clients: Clients, environment: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "redrive", "--dlq", environment.dlq_url, "--dry-run"]) == 0
    assert "would be moved back" in capsys.readouterr().out
    assert depth(clients, environment.dlq_url) == len(BODIES)
    assert depth(clients, environment.queue_url) == 0

    # The emulator has no StartMessageMoveTask: auto falls back to send-then-delete.
    assert main(["dlq", "redrive", "--dlq", environment.dlq_url]) == 0
    assert f"{len(BODIES)} message(s) moved back (copy)" in capsys.readouterr().out
    assert depth(clients, environment.dlq_url) == 0
    moved = clients.sqs.receive_message(QueueUrl=environment.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in moved) == sorted(BODIES.values())


def test_move_task_path_asks_sqs_to_move_server_side(clients: Clients, environment: Environment) -> None:
    """What AWS runs: StartMessageMoveTask from the DLQ to its source queue (stubbed: moto lacks it)."""
    queue = DeadLetterQueue(clients.sqs, environment.dlq_url)
    assert queue.source_url == environment.queue_url
    with Stubber(clients.sqs) as stub:
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": environment.dlq_arn}},
            {"QueueUrl": environment.dlq_url, "AttributeNames": ["QueueArn"]},
        )
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": environment.queue_arn}},
            {"QueueUrl": environment.queue_url, "AttributeNames": ["QueueArn"]},
        )
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "task-1"},
            {
                "SourceArn": environment.dlq_arn,
                "DestinationArn": environment.queue_arn,
                "MaxNumberOfMessagesPerSecond": 5,
            },
        )
        report = queue.redrive(method=Method.MOVE_TASK, rate=5)
        stub.assert_no_pending_responses()
    assert report.task_handle == "task-1"
    assert "move task started" in report.render()


def test_auto_picks_the_move_task_on_aws_and_the_copy_elsewhere(clients: Clients, environment: Environment) -> None:
    import boto3

    assert not DeadLetterQueue(clients.sqs, environment.dlq_url).on_aws
    real = boto3.client("sqs", region_name="eu-west-1", endpoint_url="https://sqs.eu-west-1.amazonaws.com")
    assert DeadLetterQueue(real, "https://sqs.eu-west-1.amazonaws.com/123456789012/q-dlq", source="https://x/q").on_aws


@pytest.mark.usefixtures("aws_env")
def test_dlq_usage_errors_exit_2(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DLQ_URL", raising=False)
    assert main(["dlq", "list"]) == 2
    assert "give --dlq" in capsys.readouterr().err
    assert main(["dlq", "list", "--dlq", unique("no-such-queue")]) == 2
    assert "no such queue" in capsys.readouterr().err
    clients = emulator.clients()
    lonely = clients.sqs.create_queue(QueueName=unique("lonely-dlq"))["QueueUrl"]
    assert main(["dlq", "redrive", "--dlq", lonely]) == 2
    assert "give --to" in capsys.readouterr().err
